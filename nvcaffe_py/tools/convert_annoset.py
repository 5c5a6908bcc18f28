"""convert_annoset: images and their VOC-style XML annotations -> an LMDB of AnnotatedDatums, as
the SSD fork's tools/convert_annoset (what its AnnotatedData layer reads).

    nvcaffe convert_annoset --anno_type=detection --label_map_file=labelmap.prototxt [FLAGS] \\
        ROOTFOLDER/ LISTFILE DB_NAME

With --anno_type=detection, LISTFILE lines are `image_path annotation_path` (both relative to
ROOTFOLDER, joined as given); each object of the XML (`annotation/object`: name, difficult,
bndbox xmin ymin xmax ymax in pixels) becomes a box normalized by the XML's `size` (the image's
own size where the XML has none), grouped by the label its name has in the label map (SSD's
LabelMap prototxt), instance ids counting per group. An image whose annotation file does not
exist gets no boxes, as in the fork. With --anno_type=classification, lines are `path label` and
records carry only the datum's label. Keys are `%08d_<image path>`. Images are stored as Datums
as convert_imageset stores them (--encoded/--encode_type keep the file's bytes, --resize_* resize,
--gray); boxes stay normalized, so resizing does not change them.

An image that cannot be read is left out with a warning naming its line, as the fork does; an
annotation that cannot be used stops the conversion with an error naming the list line and the
file: XML that does not parse, an object name the label map lacks, a box without its four
coordinates. The database appears under DB_NAME only once complete.
"""
import os
import xml.etree.ElementTree as ElementTree

from .. import log
from ..datum import list_lines, read_image
from ..errors import CaffeError
from ..files import read_regular
from ..label_map import name_to_label, read_label_map
from ..proto import caffe_pb2
from . import run_tool
from .convert_imageset import add_image_flags, write_records
from .gflags import GflagsParser


def build_parser():
    p = GflagsParser("convert_annoset", "Convert images and their annotations to an LMDB of AnnotatedDatums.")
    add_image_flags(p)
    p.add_flag("anno_type", default="classification", help="the annotation type: detection or classification")
    p.add_flag("label_type", default="xml", help="the type of the annotation files (xml)")
    p.add_flag("label_map_file", default="", help="the LabelMap prototxt naming every class (detection)")
    p.add_bool_flag("check_label", help="accepted for the fork's scripts; names and labels are always checked")
    return p


def read_pairs(path, detection):
    """[(line number, image path, annotation path or int label)] of the list file."""
    entries = []
    for number, line in list_lines(path, "list file"):
        fields = line.split()
        if len(fields) != 2:
            what = "'image_path annotation_path'" if detection else "'path label'"
            raise CaffeError(f"{path}:{number}: expected {what}, got '{line}'")
        if not detection:
            try:
                fields[1] = int(fields[1])
            except ValueError:
                raise CaffeError(f"{path}:{number}: the label '{fields[1]}' is not an integer") from None
        entries.append((number, fields[0], fields[1]))
    return entries


def _number(element, tag, where):
    node = element.find(tag)
    if node is None or node.text is None:
        raise CaffeError(f"{where}: no <{tag}>")
    try:
        return float(node.text)
    except ValueError:
        raise CaffeError(f"{where}: <{tag}> is '{node.text.strip()}', not a number") from None


def read_voc_xml(path, labels, image_size, record):
    """ReadXMLToAnnotatedDatum: the objects of a VOC XML file into record's annotation groups."""
    try:
        root = ElementTree.fromstring(read_regular(path))
    except ElementTree.ParseError as exc:
        raise CaffeError(f"{path}: not valid XML: {exc}") from None
    height, width = image_size
    size = root.find("size")
    if size is not None and size.find("width") is not None and size.find("height") is not None:
        width, height = _number(size, "width", f"{path}: <size>"), _number(size, "height", f"{path}: <size>")
        if (height, width) != tuple(image_size):
            log.warning(f"{path}: the annotation's size {int(width)}x{int(height)} differs from the image's "
                        f"{image_size[1]}x{image_size[0]}")
    if width <= 0 or height <= 0:
        raise CaffeError(f"{path}: no valid image width/height")
    groups = {}
    for k, obj in enumerate(root.iter("object"), start=1):
        where = f"{path}: object #{k}"
        name = (obj.findtext("name") or "").strip()
        if name not in labels:
            raise CaffeError(f"{where}: name '{name}' is not in the label map")
        box = obj.find("bndbox")
        if box is None:
            raise CaffeError(f"{where}: no <bndbox>")
        xmin, ymin, xmax, ymax = (_number(box, tag, f"{where} <bndbox>") for tag in ("xmin", "ymin", "xmax", "ymax"))
        if xmin > xmax or ymin > ymax:
            log.warning(f"{where}: bounding box irregular ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g})")
        label = labels[name]
        if label not in groups:
            groups[label] = record.annotation_group.add(group_label=label)
        group = groups[label]
        annotation = group.annotation.add(instance_id=len(group.annotation))
        b = annotation.bbox
        b.xmin, b.ymin, b.xmax, b.ymax = xmin / width, ymin / height, xmax / width, ymax / height
        b.difficult = (obj.findtext("difficult") or "0").strip() == "1"


def convert(args) -> int:
    detection = args.anno_type == "detection"
    if args.anno_type not in ("detection", "classification"):
        raise CaffeError(f"--anno_type must be detection or classification, not '{args.anno_type}'")
    if args.label_type != "xml":
        raise CaffeError(f"--label_type {args.label_type} is not supported; VOC-style xml is")
    labels = None
    if detection:
        if not args.label_map_file:
            raise CaffeError("--anno_type=detection needs --label_map_file")
        labels = name_to_label(read_label_map(args.label_map_file))

    def annotated(entry, datum):
        _, name, annotation = entry
        record = caffe_pb2.AnnotatedDatum(datum=datum)
        if detection:
            record.type = caffe_pb2.AnnotatedDatum.BBOX
            if os.path.exists(args.root_folder + annotation):
                image_size = read_image(args.root_folder + name, is_color=not args.gray).shape[:2]
                read_voc_xml(args.root_folder + annotation, labels, image_size, record)
        return record.SerializeToString()

    return write_records(args, read_pairs(args.listfile, detection), annotated)


def main(argv=None) -> int:
    return run_tool(build_parser(), convert, argv)
