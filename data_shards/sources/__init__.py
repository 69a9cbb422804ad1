"""Dataset sources: each lists one split as :class:`data_shards.records.SourceListing`."""
