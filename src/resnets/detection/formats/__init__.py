"""One reader per box format, each ending in `Found` items (boxes.py)."""

from .coco import read_coco
from .table import read_box_csv
from .voc import read_voc
from .yolo import read_yolo

READERS = {"voc": read_voc, "coco": read_coco, "yolo": read_yolo, "csv": read_box_csv}
