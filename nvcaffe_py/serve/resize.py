"""Resizing an image to a dataset's size as DIGITS offers it: squash (stretch, as Caffe's
convert_imageset does), crop (keep the aspect ratio, fill the size, cut the centre) or fill
(keep the aspect ratio, fit inside, pad with black)."""
import cv2

RESIZE_MODES = ("squash", "crop", "fill")


def resize(image, height, width, mode="squash"):
    if mode == "squash":
        return cv2.resize(image, (width, height))
    h, w = image.shape[:2]
    scale = (max if mode == "crop" else min)(height / h, width / w)
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    scaled = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    if mode == "crop":
        top, left = (new_h - height) // 2, (new_w - width) // 2
        return scaled[top:top + height, left:left + width]
    top, left = (height - new_h) // 2, (width - new_w) // 2
    return cv2.copyMakeBorder(scaled, top, height - new_h - top, left, width - new_w - left, cv2.BORDER_CONSTANT,
                              value=0)
