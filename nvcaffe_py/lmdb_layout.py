"""A check of an LMDB's data.mdb against LMDB's on-disk layout, run before LMDB maps the file.

LMDB trusts its file: a data.mdb shorter than its last transaction says kills the process with
SIGBUS when a page past the end is touched, and a damaged B-tree page makes LMDB assert (abort) or
read past the end. So the readers check first, reading with plain file reads what LMDB's read-only
cursors will follow: the newest meta page, the file's size against the pages it declares, and the
main database's tree (every branch and leaf page, and the header of each overflow page a record
points to). Record values are not read; a damaged value is the Datum decoder's to report.

The layout is LMDB 0.9's on a 64-bit machine (as Caffe's datasets are written): a 16-byte page
header (pgno, pad, flags, lower, upper; an overflow page keeps its page count where lower/upper
are), two meta pages first, an 8-byte node header (lo, hi, flags, key size) before each key.
"""
import os
import struct

from .errors import CaffeError

_PAGE_HEADER = struct.Struct("<QHHHH")  # pgno, pad, flags, lower, upper
_OVERFLOW_PAGES = struct.Struct("<I")  # at offset 12 of an overflow page
_NODE = struct.Struct("<HHHH")  # lo, hi, flags, key size
_HEADER_SIZE, _NODE_SIZE = 16, 8
_P_BRANCH, _P_LEAF, _P_OVERFLOW, _P_META = 0x01, 0x02, 0x04, 0x08
_F_BIGDATA, _F_SUBDATA, _F_DUPDATA = 0x01, 0x02, 0x04
_MAGIC, _VERSION = 0xBEEFC0DE, 1
# The meta page after its page header: magic, version, address, map size, the free-page database
# (whose first field holds the page size), the main database, the last page, the transaction id.
_META = struct.Struct("<IIQQ" "IHHQQQQQ" "IHHQQQQQ" "QQ")
_MAX_DEPTH = 64  # a B-tree of 2^64 records is far shallower


def key_text(key: bytes) -> str:
    """A record key for a message: UTF-8 where it is, escapes for other bytes and control characters."""
    text = bytes(key).decode("utf-8", errors="backslashreplace")
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


class _Damage(Exception):
    """What is wrong, for the message; the walk knows the record it happened near."""


def check(path):
    """Raise a one-line CaffeError if the LMDB directory `path` is truncated or its tree is damaged."""
    data_file = os.path.join(os.fspath(path), "data.mdb")
    with open(data_file, "rb") as f:
        layout = _Layout(f, os.fstat(f.fileno()).st_size)
        try:
            layout.read_meta()
        except _Damage as exc:
            raise CaffeError(f"LMDB '{path}' is not a readable LMDB: {exc}") from None
        if layout.file_size < layout.needed_size:
            raise CaffeError(f"LMDB '{path}' is truncated: data.mdb has {layout.file_size} bytes, but its last "
                             f"transaction uses {layout.needed_size} ({layout.last_page + 1} pages of "
                             f"{layout.page_size}); copy or rebuild the database")
        try:
            layout.walk()
        except _Damage as exc:
            near = f" near record '{layout.near_key}'" if layout.near_key is not None else ""
            raise CaffeError(f"LMDB '{path}' is corrupted{near}: {exc}; rebuild the database") from None


class _Layout:
    def __init__(self, f, file_size):
        self.f, self.file_size = f, file_size
        self.near_key = None  # the last key read: the damage lies at or after it

    def _read(self, offset, size) -> bytes:
        return os.pread(self.f.fileno(), size, offset)

    def read_meta(self):
        """The meta page LMDB picks: of the two, the one with the later transaction id (page 0 on a
        tie); the page size comes from page 0, as LMDB reads it."""
        metas = []
        offset = 0
        for index in range(2):
            raw = self._read(offset, _HEADER_SIZE + _META.size)
            if len(raw) < _HEADER_SIZE + _META.size:
                raise _Damage(f"data.mdb is too short to hold meta page {index}")
            _, _, flags, _, _ = _PAGE_HEADER.unpack_from(raw)
            fields = _META.unpack_from(raw, _HEADER_SIZE)
            if not flags & _P_META or fields[0] != _MAGIC or fields[1] != _VERSION:
                raise _Damage(f"meta page {index} is not an LMDB {_VERSION} meta page")
            metas.append(fields)
            if index == 0:
                offset = self.page_size = fields[4]
                if not 512 <= self.page_size <= 65536 or self.page_size & (self.page_size - 1):
                    raise _Damage(f"page size {self.page_size} is not a power of two from 512 to 65536")
        meta = metas[1] if metas[0][-1] < metas[1][-1] else metas[0]
        _, _, main_depth, _, _, _, self.entries, self.root = meta[12:20]
        self.depth, self.last_page = main_depth, meta[20]
        self.needed_size = (self.last_page + 1) * self.page_size

    def walk(self):
        """Every page of the main database's tree: branch pages above the last level, leaf pages
        on it, each page reached once, every pointer inside the file."""
        if self.depth == 0:
            return
        if self.depth > _MAX_DEPTH:
            raise _Damage(f"the tree claims a depth of {self.depth}")
        seen = set()
        pending = [(self.root, 1)]
        while pending:
            page, level = pending.pop()
            self._check_page_number(page, "a tree page")
            if page in seen:
                raise _Damage(f"page {page} is reached twice in the tree")
            seen.add(page)
            raw = self._read(page * self.page_size, self.page_size)
            nodes = self._nodes(page, raw, _P_LEAF if level == self.depth else _P_BRANCH)
            if level < self.depth:
                children = []
                for offset in nodes:
                    lo, hi, flags, key_size = _NODE.unpack_from(raw, offset)
                    self._note_key(raw, offset, key_size)
                    children.append(lo | hi << 16 | flags << 32)
                pending.extend((child, level + 1) for child in reversed(children))
            else:
                for offset in nodes:
                    self._check_record(page, raw, offset)

    def _check_page_number(self, page, what):
        if not 2 <= page <= self.last_page:
            raise _Damage(f"{what} number {page} lies past the last page ({self.last_page}) or on a meta page")

    def _nodes(self, page, raw, kind):
        """The node offsets of a branch or leaf page, each node header inside the page."""
        _, _, flags, lower, upper = _PAGE_HEADER.unpack_from(raw)
        if flags & (_P_BRANCH | _P_LEAF | _P_OVERFLOW | _P_META) != kind:
            name = "a leaf page" if kind == _P_LEAF else "a branch page"
            raise _Damage(f"page {page} should be {name} but its flags are 0x{flags:x}")
        if not _HEADER_SIZE <= lower <= upper <= self.page_size or lower % 2:
            raise _Damage(f"page {page} has a damaged header (lower {lower}, upper {upper})")
        count = (lower - _HEADER_SIZE) // 2
        offsets = struct.unpack_from(f"<{count}H", raw, _HEADER_SIZE)
        for offset in offsets:
            if not upper <= offset <= self.page_size - _NODE_SIZE:
                raise _Damage(f"page {page} points to a record at offset {offset}, outside the page")
            key_size = _NODE.unpack_from(raw, offset)[3]
            if offset + _NODE_SIZE + key_size > self.page_size:
                raise _Damage(f"page {page} holds a key of {key_size} bytes that runs past the page")
        return offsets

    def _note_key(self, raw, offset, key_size):
        if key_size:
            start = offset + _NODE_SIZE
            self.near_key = key_text(raw[start:start + key_size])

    def _check_record(self, page, raw, offset):
        lo, hi, flags, key_size = _NODE.unpack_from(raw, offset)
        self._note_key(raw, offset, key_size)
        size = lo | hi << 16
        value = offset + _NODE_SIZE + key_size
        if flags & (_F_SUBDATA | _F_DUPDATA):
            raise _Damage(f"page {page} holds a sub-database or duplicate keys, which datasets never use")
        if not flags & _F_BIGDATA:
            if value + size > self.page_size:
                raise _Damage(f"a value of {size} bytes on page {page} runs past its page")
            return
        if value + 8 > self.page_size:
            raise _Damage(f"page {page} holds an overflow pointer that runs past the page")
        first = struct.unpack_from("<Q", raw, value)[0]
        self._check_page_number(first, "an overflow page")
        header = self._read(first * self.page_size, _HEADER_SIZE)
        if not _PAGE_HEADER.unpack_from(header)[2] & _P_OVERFLOW:
            raise _Damage(f"page {first} should be an overflow page")
        pages = _OVERFLOW_PAGES.unpack_from(header, 12)[0]
        if first + pages > self.last_page + 1 or _HEADER_SIZE + size > pages * self.page_size:
            raise _Damage(f"a value of {size} bytes in {pages} overflow pages from page {first} runs past "
                          f"its pages or the file")
