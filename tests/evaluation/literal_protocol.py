"""The protocol done literally, written for the tests: the two reference score maps
(wsolevaluation's inference.py, the SCM release's resize_cam); per CAM threshold,
threshold the uint8 map and run OpenCV's findContours (the structure of wsolevaluation's
compute_bboxes_from_scoremaps), then match boxes with GT boxes (calculate_multiple_iou)."""

import cv2
import numpy as np


def wsol_scoremap(cam, size):
    """wsolevaluation's inference.py: cv2.INTER_CUBIC to (H, W), then normalize_scoremap."""
    cam = cv2.resize(cam.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_CUBIC)
    if np.isnan(cam).any():
        return np.zeros_like(cam)
    if cam.min() == cam.max():
        return np.zeros_like(cam)
    cam -= cam.min()
    cam /= cam.max()
    return cam


def release_scoremap(cam, size):
    """The SCM release's resize_cam: cv2.resize's default (bilinear), then min-max (a
    constant map, which the release cannot normalise, is zeros here)."""
    cam = cv2.resize(cam.astype(np.float32), (size[1], size[0]))
    cam_min, cam_max = cam.min(), cam.max()
    if cam_min == cam_max:
        return np.zeros_like(cam)
    return (cam - cam_min) / (cam_max - cam_min)


def literal_boxes(scoremap, taus, multi_contour):
    """Per tau, the list of boxes the reference code produces."""
    height, width = scoremap.shape
    image = np.expand_dims((scoremap * 255).astype(np.uint8), 2)
    per_tau = []
    for tau in taus:
        _, binary = cv2.threshold(
            src=image, thresh=int(tau * np.max(image)), maxval=255, type=cv2.THRESH_BINARY
        )
        contours = cv2.findContours(image=binary, mode=cv2.RETR_TREE, method=cv2.CHAIN_APPROX_SIMPLE)[0]
        if len(contours) == 0:
            per_tau.append(np.asarray([[0, 0, 0, 0]]))
            continue
        if not multi_contour:
            contours = [max(contours, key=cv2.contourArea)]
        boxes = []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            boxes.append([x, y, min(x + w, width - 1), min(y + h, height - 1)])
        per_tau.append(np.asarray(boxes))
    return per_tau


def multiple_iou(box_a, box_b):
    box_a = np.asarray(box_a, dtype=np.int64)
    box_b = np.asarray(box_b, dtype=np.int64)
    min_x = np.maximum(box_a[:, 0, None], box_b[:, 0][None, :])
    min_y = np.maximum(box_a[:, 1, None], box_b[:, 1][None, :])
    max_x = np.minimum(box_a[:, 2, None], box_b[:, 2][None, :])
    max_y = np.minimum(box_a[:, 3, None], box_b[:, 3][None, :])
    area_a = ((box_a[:, 2] - box_a[:, 0] + 1) * (box_a[:, 3] - box_a[:, 1] + 1))[:, None]
    area_b = ((box_b[:, 2] - box_b[:, 0] + 1) * (box_b[:, 3] - box_b[:, 1] + 1))[None, :]
    intersection = np.maximum(max_x - min_x + 1, 0) * np.maximum(max_y - min_y + 1, 0)
    return intersection / (area_a + area_b - intersection)


def literal_ious(scoremap, taus, gt_boxes, multi_contour):
    """Per tau, the best IoU over the produced boxes and the GT boxes."""
    return np.array(
        [multiple_iou(boxes, gt_boxes).max() for boxes in literal_boxes(scoremap, taus, multi_contour)]
    )


def literal_counts(scoremaps, gt_boxes, taus, iou_thresholds, multi_contour):
    """[n_iou, n_tau] numbers of images with best IoU >= threshold / 100."""
    counts = np.zeros((len(iou_thresholds), len(taus)), np.int64)
    for scoremap, boxes in zip(scoremaps, gt_boxes):
        ious = literal_ious(scoremap, taus, boxes, multi_contour)
        for i, threshold in enumerate(iou_thresholds):
            counts[i] += ious >= threshold / 100
    return counts
