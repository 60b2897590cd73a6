"""IDX bytes <-> NumPy arrays: the file format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``0x00 0x00 TYPE NDIM``, then ``NDIM`` big-endian
uint32 dimensions, then the values, big-endian, in C order. Every header field is
checked against the bytes that are really there *before* anything is allocated, so a
header that declares 10^12 images is rejected at once instead of exhausting memory.
"""

from __future__ import annotations

import gzip
import struct
import zlib

import numpy as np

from digitnet.errors import DataError

# IDX type byte -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder("=").str[1:]: code for code, dt in IDX_DTYPES.items()}

MAX_BYTES = 1 << 30  # refuse any IDX payload over 1 GiB: no digit data set is that large


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file into an array.

    Returns an array of the declared shape in native byte order (uint8 for MNIST).
    Raises :class:`DataError` naming ``name`` for a wrong magic number, an unknown
    type, a truncated file or trailing bytes.
    """
    if len(data) < 4:
        raise DataError(f"{name}: only {len(data)} bytes, too short for an IDX header. Is it truncated?")
    zero, code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or code not in IDX_DTYPES or not 1 <= ndim <= 4:
        raise DataError(
            f"{name}: wrong magic number 0x{int.from_bytes(data[:4], 'big'):08X}; this is not an IDX "
            "file (MNIST files start with 0x00000801 or 0x00000803). Check the file name and that it is "
            "decompressed or ends in .gz."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{name}: the header is cut short ({len(data)} bytes). The file is truncated.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=object)) * dtype.itemsize  # exact: no int64 overflow
    if expected > MAX_BYTES:
        raise DataError(
            f"{name}: the header declares {' x '.join(map(str, dims))} values "
            f"({expected:,} bytes), more than digitnet accepts. The file is corrupted."
        )
    actual = len(data) - header
    if actual < expected:
        raise DataError(
            f"{name}: truncated: the header declares {' x '.join(map(str, dims))} values "
            f"({expected:,} bytes) but only {actual:,} bytes follow. Download or copy the file again."
        )
    if actual > expected:
        raise DataError(
            f"{name}: {actual - expected:,} unexpected bytes after the {' x '.join(map(str, dims))} "
            "values the header declares. The file is corrupted."
        )
    a = np.frombuffer(data, dtype=dtype, count=int(np.prod(dims)), offset=header).reshape(dims)
    return a.astype(dtype.newbyteorder("="), copy=False)


def encode_idx(a: np.ndarray) -> bytes:
    """Encode an array as IDX bytes (the inverse of :func:`parse_idx`)."""
    a = np.asarray(a)
    key = a.dtype.newbyteorder("=").str[1:]
    if key not in _CODES:
        raise DataError(f"IDX cannot store arrays of dtype {a.dtype}; use uint8, int8, int16, int32, float32 or float64.")
    if not 1 <= a.ndim <= 4:
        raise DataError(f"IDX stores arrays of 1 to 4 dimensions; got {a.ndim}.")
    code = _CODES[key]
    header = struct.pack(">HBB", 0, code, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + np.ascontiguousarray(a, dtype=IDX_DTYPES[code]).tobytes()


def gunzip(data: bytes, name: str, limit: int = MAX_BYTES) -> bytes:
    """Decompress gzip bytes, refusing to inflate past ``limit`` bytes (a gzip bomb)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(data, limit + 1)
        if len(out) > limit:
            raise DataError(f"{name}: decompresses to more than {limit:,} bytes. The file is corrupted.")
        if not d.eof:
            raise DataError(f"{name}: the gzip stream is truncated. Download or copy the file again.")
    except zlib.error as e:
        raise DataError(f"{name}: not a valid gzip file ({e}). Download or copy the file again.") from None
    return out


def _header_size(head: bytes, name: str) -> tuple[int, int]:
    """The first bytes of an IDX file -> (header bytes, payload bytes the header declares).

    Raises :class:`DataError` like :func:`parse_idx` for a wrong magic number or a header
    that declares more than :data:`MAX_BYTES`."""
    if len(head) < 4:
        raise DataError(f"{name}: only {len(head)} bytes, too short for an IDX header. Is it truncated?")
    zero, code, ndim = struct.unpack(">HBB", head[:4])
    if zero != 0 or code not in IDX_DTYPES or not 1 <= ndim <= 4:
        parse_idx(head[:4] + b"\0" * 4, name)  # raises the wrong-magic-number error
    header = 4 + 4 * ndim
    if len(head) < header:
        raise DataError(f"{name}: the header is cut short ({len(head)} bytes). The file is truncated.")
    dims = struct.unpack(f">{ndim}I", head[4:header])
    expected = int(np.prod(dims, dtype=object)) * IDX_DTYPES[code].itemsize
    if expected > MAX_BYTES:
        raise DataError(
            f"{name}: the header declares {' x '.join(map(str, dims))} values "
            f"({expected:,} bytes), more than digitnet accepts. The file is corrupted."
        )
    return header, expected


CHUNK = 1 << 20  # bytes read (or decompressed) at a time
# Decompressed at a time: small pieces reuse one small block of the heap. Pieces of megabytes
# would each be mapped and unmapped, which makes the C library keep such blocks afterwards (15 MB).
PIECE = 1 << 16


def read_idx_bytes(path, name: str | None = None) -> bytes:
    """The (decompressed) bytes of the IDX file at ``path`` (``.gz``: gzip-compressed).

    The sizes are checked against the header *before* the data is read: an uncompressed file
    must be exactly as long as its header says (a 30 GB file is refused without being read),
    and a compressed one is decompressed as a stream that stops as soon as it passes the size
    its header implies (a gzip bomb costs no more than a real file). The result still goes
    through :func:`parse_idx`.
    """
    from pathlib import Path

    path = Path(path)
    name = name or str(path)
    try:
        with open(path, "rb") as f:
            if path.suffix != ".gz":
                head = f.read(4 + 4 * 4)
                header, expected = _header_size(head, name)
                size = path.stat().st_size
                if size != header + expected:
                    problem = "truncated" if size < header + expected else "too long"
                    raise DataError(
                        f"{name}: {problem}: the file is {size:,} bytes but its header declares "
                        f"{header + expected:,}. Download or copy the file again."
                    )
                return head + f.read(size - len(head))
            return _gunzip_file(f, name)
    except OSError as e:
        raise DataError(f"Cannot read {name}: {e.strerror or e}.") from None


def _gunzip_file(f, name: str) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = bytearray()
    limit = None  # set once the header has been decompressed
    try:
        while not d.eof:
            chunk = d.unconsumed_tail or f.read(CHUNK)
            if not chunk:
                raise DataError(f"{name}: the gzip stream is truncated. Download or copy the file again.")
            room = (limit if limit is not None else 4 + 4 * 4) - len(out) + 1
            out += d.decompress(chunk, max(min(room, PIECE), 1))
            if limit is None and len(out) >= 4 + 4 * 4 or limit is None and d.eof:
                header, expected = _header_size(bytes(out[:20]), name)
                limit = header + expected
            if limit is not None and len(out) > limit:
                raise DataError(f"{name}: decompresses to more than the {limit:,} bytes its header declares. "
                                "The file is corrupted.")
    except zlib.error as e:
        raise DataError(f"{name}: not a valid gzip file ({e}). Download or copy the file again.") from None
    return bytes(out)


def write_idx(path, a: np.ndarray, compress: bool | None = None) -> None:
    """Write ``a`` as an IDX file (gzip-compressed if the name ends in .gz)."""
    from pathlib import Path

    path = Path(path)
    data = encode_idx(a)
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
