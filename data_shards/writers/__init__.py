"""Shard writers: WebDataset tar shards and the FFCV .beton."""
