"""convert_imageset: images named in a list file -> an LMDB of Datums, as Caffe's tool.

    nvcaffe convert_imageset [FLAGS] ROOTFOLDER/ LISTFILE DB_NAME

LISTFILE lines are `path label`; each image is read from ROOTFOLDER + path (so give ROOTFOLDER its
trailing slash). Keys are `%08d_<path>`, numbered in (shuffled) list order, as Caffe writes them.
A line whose image cannot be read is reported by line number and left out, as Caffe does; a line
that is not `path label`, or an image of another size under --check_size, stops the conversion.
The database appears under DB_NAME only once complete.
"""
import os

from .. import log, rng
from ..datum import datum_to_array, read_image_list, read_image_to_datum
from ..datasets import writer_class
from ..errors import CaffeError
from . import Progress, run_tool, say
from .gflags import GflagsParser


def build_parser():
    return add_image_flags(GflagsParser("convert_imageset", "Convert a set of images to an LMDB of Datums."))


def add_image_flags(p):
    """The flags and arguments convert_imageset shares with convert_annoset."""
    p.add_bool_flag("gray", help="treat images as grayscale ones")
    p.add_bool_flag("shuffle", help="randomly shuffle the order of images and their labels")
    p.add_flag("backend", default="lmdb", help="the backend for storing the result (lmdb or leveldb)")
    p.add_flag("resize_width", type=int, default=0, help="width images are resized to")
    p.add_flag("resize_height", type=int, default=0, help="height images are resized to")
    p.add_bool_flag("check_size", help="check that all the images have the same size")
    p.add_bool_flag("encoded", help="store the encoded image (its file bytes when possible) in the datum")
    p.add_flag("encode_type", default="", help="what type to encode images as ('png', 'jpg', ...); implies --encoded")
    p.add_argument("root_folder", metavar="ROOTFOLDER/")
    p.add_argument("listfile", metavar="LISTFILE")
    p.add_argument("db_name", metavar="DB_NAME")
    return p


def _encoding(args, name) -> str:
    if args.encode_type:
        return args.encode_type
    if not args.encoded:
        return ""
    ext = os.path.splitext(name)[1][1:].lower()
    if not ext:
        raise CaffeError(f"cannot guess the encoding of '{name}' from its name; give --encode_type")
    return ext


def check_root_folder(root_folder, entries, listfile):
    """Caffe reads ROOTFOLDER + path, a plain concatenation: a folder given without its trailing
    '/' that holds the listed files is a mistake worth naming before every image fails to load."""
    if not entries or root_folder.endswith(("/", os.sep)) or not os.path.isdir(root_folder):
        return
    number, name, _ = entries[0]
    if not os.path.exists(root_folder + name) and os.path.exists(os.path.join(root_folder, name)):
        raise CaffeError(f"{listfile}:{number}: '{root_folder + name}' does not exist, but "
                         f"'{os.path.join(root_folder, name)}' does: ROOTFOLDER is joined to each path as given, "
                         f"so give it a trailing '/' ('{root_folder}/')")


def convert(args) -> int:
    return write_records(args, read_image_list(args.listfile), lambda entry, datum: datum.SerializeToString())


def write_records(args, entries, record):
    """The conversion loop convert_imageset and convert_annoset share: each entry's (line number,
    path, label or annotation) image read as a Datum (an unreadable one is left out with a
    warning), the sizes checked under --check_size, and `record(entry, datum)` (the bytes to
    store; a CaffeError there stops the conversion) stored under `%08d_<path>`."""
    writer = writer_class(args.backend)
    check_root_folder(args.root_folder, entries, args.listfile)
    if args.shuffle:
        rng.generator().shuffle(entries)
    say(f"A total of {len(entries)} images.")
    skipped = []
    first_shape = None
    progress = Progress("files", len(entries))
    with writer(args.db_name) as db:
        for index, entry in enumerate(entries):
            number, name, target = entry
            label = target if isinstance(target, int) else -1
            try:
                datum = read_image_to_datum(args.root_folder + name, label, args.resize_height, args.resize_width,
                                            not args.gray, _encoding(args, name))
            except CaffeError as exc:
                log.warning(f"{args.listfile}:{number}: skipped: {exc}")
                skipped.append(number)
                continue
            if args.check_size:
                shape = datum_to_array(datum).shape
                first_shape = first_shape or shape
                if shape != first_shape:
                    raise CaffeError(f"{args.listfile}:{number}: image '{name}' is {shape} (channels, height, width) "
                                     f"but the first image is {first_shape} (--check_size)")
            try:
                payload = record(entry, datum)
            except CaffeError as exc:
                raise CaffeError(f"{args.listfile}:{number}: {exc}") from None
            db.put(f"{index:08d}_{name}", payload)
            progress.step()
        if db.count == 0:
            raise CaffeError(f"no image of '{args.listfile}' could be read; nothing written")
    progress.done()
    say(f"Wrote {db.count} records to {args.db_name}")
    if skipped:
        lines = ", ".join(map(str, skipped[:20])) + (", ..." if len(skipped) > 20 else "")
        log.warning(f"Skipped {len(skipped)} unreadable images (lines {lines} of {args.listfile})")
    return 0


def main(argv=None) -> int:
    return run_tool(build_parser(), convert, argv)
