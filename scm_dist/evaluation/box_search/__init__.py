"""Exact fast box search: the protocol's boxes at every CAM threshold in one sweep.

The literal protocol thresholds the uint8 map at up to 100 levels and runs OpenCV's
``findContours(RETR_TREE, CHAIN_APPROX_SIMPLE)`` each time. The contours of a binary image
are, by Suzuki & Abe's border following (foreground 8-connected, background
4-connected):

* one outer border per 8-connected foreground component; its bounding rect is the
  component's bounding box;
* one hole border per background 4-connected component that does not reach the image
  frame; its bounding rect is the hole's bounding box grown by one pixel on every side.

``cv2.contourArea`` of an outer border (a polygon through pixel centres, holes included)
is the number of 2x2 pixel cells with all four corners in the hole-filled component plus
half the cells with three. A hole border is never larger than its parent's outer border,
nested components are strictly smaller than their ancestors and OpenCV lists parents
before children, so the protocol's ``max(contours, key=contourArea)`` is always the outer
border of a top-level component: a component of the hole-filled map's level set.

So one union-find sweep over the pixels in decreasing value order gives every
component's box and own area (and, by Euler numbers, whether holes exist) at every
threshold. Where holes could change which component is the largest, the hole-filled map
is swept again (or, for a few thresholds, OpenCV settles it). For every contour's
boxes, one union-find sweep in increasing order over the background (the same sorted
pixels, reversed; the frame is one component) gives the hole boxes, at the thresholds
where a hole could beat the best component box (a hole lies inside its component's
box, which bounds its IoU) and, when only hits at given IoU thresholds are counted,
where it could lift the best IoU over one of them. Once one component spans the frame
with more than half the image's area, it is the largest at every lower threshold: the
largest-contour sweep stops there.

When two top-level components tie for the largest area with different boxes, the winner
depends on OpenCV's list order; those thresholds are flagged and the caller resolves
them with OpenCV itself (:func:`scm_dist.evaluation.contours.largest_contour_box`), so
the result is identical to the literal protocol for every map and threshold.

Modules: :mod:`.tables` (neighbour and Euler lookup tables), :mod:`.union_find` (work
arrays, pixel order, union-find), :mod:`.scoring` (box IoU with the GT boxes),
:mod:`.components` (the component sweep), :mod:`.holes` (the hole sweep), :mod:`.maps`
(the per-map and per-block entry points).
"""
