"""Content-verification rules, shared by the transfer engine and ``verify`` (pure).

Which check an object gets follows from what the source says about it:

* single-part ETag (32 hex digits): the MD5 of the body;
* multipart ETag ``<hex>-N``: the MD5 of the concatenated part MD5s, with the
  upload part size inferred from the size and ``N`` (:func:`part_size_candidates`);
* a full-object checksum header (``x-amz-checksum-crc64nvme``, ``-crc32c``,
  ``-crc32``, ``-sha256``): that checksum, computed natively (``awscrt``),
  per range and combined, so parallel ranges need no second read;
* a published SHA-256: that digest;
* an opaque ETag (anything else) and no checksum: the size only, recorded as
  such and reported once.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from laion_fmri.stores.base import ObjectInfo

MiB = 1024 * 1024
#: Part sizes the usual upload tools use (aws cli / boto3: 8 MiB; others 5, 16, 64).
COMMON_PART_SIZES: tuple[int, ...] = (8 * MiB, 16 * MiB, 5 * MiB, 64 * MiB)
#: Range size for objects whose upload part size is unknown.
DEFAULT_RANGE_SIZE = 8 * MiB
#: Upload part sizes outside these bounds are fetched as 8 MiB ranges and re-hashed.
_CRC_ALGORITHMS = ("crc32", "crc32c", "crc64nvme")
_CRC_BYTES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8}
#: Why a file got no content check (reported once, shown by ``verify``).
OPAQUE_ETAG = "the server's ETag is not a content hash and it sent no checksum"
ETAG_NOT_CONTENT_HASH = "the server's ETag is not a content hash"


def part_size_candidates(size: int, n_parts: int) -> list[int]:
    """Upload part sizes that split ``size`` bytes into exactly ``n_parts`` parts.

    First ``ceil(size / N)`` rounded up to a whole MiB, then the common sizes
    8, 16, 5 and 64 MiB; only those giving ``N`` parts are kept.

    Parameters
    ----------
    size : int
        Object size.
    n_parts : int
        ``N`` of the multipart ETag.

    Returns
    -------
    list of int
        Candidates, most likely first (may be empty).

    Examples
    --------
    >>> [c // MiB for c in part_size_candidates(20 * MiB, 3)]
    [7, 8]
    """
    if n_parts < 1 or size < n_parts:
        return []
    guesses = [math.ceil(math.ceil(size / n_parts) / MiB) * MiB, *COMMON_PART_SIZES]
    out: list[int] = []
    for p in guesses:
        if p > 0 and math.ceil(size / p) == n_parts and p not in out:
            out.append(p)
    return out


def multipart_etag(part_md5s: Iterable[bytes]) -> str:
    """Hex MD5 of the concatenated binary part MD5s (the ``X`` of ``X-N``).

    Parameters
    ----------
    part_md5s : iterable of bytes
        Binary MD5 of each part, in order.

    Returns
    -------
    str

    Examples
    --------
    >>> multipart_etag([hashlib.md5(b"a").digest()]) == hashlib.md5(hashlib.md5(b"a").digest()).hexdigest()
    True
    """
    return hashlib.md5(b"".join(part_md5s)).hexdigest()


def crc_update(algorithm: str, data: bytes | memoryview, previous: int = 0) -> int:
    """Continue a CRC (``crc32``, ``crc32c`` or ``crc64nvme``) over ``data`` (native code).

    Parameters
    ----------
    algorithm : str
        CRC name.
    data : bytes-like
        The next bytes.
    previous : int
        The CRC so far (0 to start).

    Returns
    -------
    int

    Examples
    --------
    >>> crc_update("crc32", b"world", crc_update("crc32", b"hello ")) == crc_update("crc32", b"hello world")
    True
    """
    from awscrt import checksums

    return int(getattr(checksums, algorithm)(data, previous))


def crc_combine(algorithm: str, first: int, second: int, second_length: int) -> int:
    """The CRC of ``A + B`` from the CRCs of ``A`` and ``B`` (and the length of ``B``).

    Parameters
    ----------
    algorithm : str
        CRC name.
    first, second : int
        CRCs of the two pieces.
    second_length : int
        Bytes in the second piece.

    Returns
    -------
    int

    Examples
    --------
    >>> a, b = crc_update("crc32c", b"ab"), crc_update("crc32c", b"cd")
    >>> crc_combine("crc32c", a, b, 2) == crc_update("crc32c", b"abcd")
    True
    """
    from awscrt import checksums

    if second_length == 0:
        return first
    return int(getattr(checksums, f"combine_{algorithm}")(first, second, second_length))


def checksum_text(algorithm: str, value: int | bytes) -> str:
    """The base64 form S3 sends for a CRC value or a SHA-256 digest.

    Parameters
    ----------
    algorithm : str
        ``crc32``, ``crc32c``, ``crc64nvme`` or ``sha256``.
    value : int or bytes
        CRC value or binary digest.

    Returns
    -------
    str

    Examples
    --------
    >>> checksum_text("crc32", 0)
    'AAAAAA=='
    """
    raw = value if isinstance(value, bytes) else value.to_bytes(_CRC_BYTES[algorithm], "big")
    return base64.b64encode(raw).decode("ascii")


def is_crc(algorithm: str | None) -> bool:
    """True for the CRC algorithms (combinable across ranges).

    Parameters
    ----------
    algorithm : str or None
        Checksum name.

    Returns
    -------
    bool

    Examples
    --------
    >>> is_crc("crc64nvme"), is_crc("sha256")
    (True, False)
    """
    return algorithm in _CRC_ALGORITHMS


@dataclass(frozen=True)
class ContentRule:
    """How one object's bytes are checked.

    Parameters
    ----------
    md5 : str or None
        Expected hex MD5 (single-part ETag).
    multipart : str or None
        Expected hex MD5-of-part-MD5s (multipart ETag).
    part_sizes : tuple of int
        Candidate upload part sizes (multipart), most likely first.
    checksum : tuple of (str, str), optional
        Expected full-object checksum ``(algorithm, base64)``.
    sha256 : str or None
        Expected hex SHA-256 (published by the source).

    Examples
    --------
    >>> rule_for(ObjectInfo("k", 3, "900150983cd24fb0d6963f7d28e17f72", None)).kind
    'md5'
    """

    md5: str | None = None
    multipart: str | None = None
    part_sizes: tuple[int, ...] = ()
    checksum: tuple[str, str] | None = None
    sha256: str | None = None

    @property
    def kind(self) -> str:
        """``md5``, ``multipart``, ``checksum``, ``sha256`` or ``size`` (no content check)."""
        if self.md5:
            return "md5"
        if self.multipart and self.part_sizes:
            return "multipart"
        if self.checksum:
            return "checksum"
        if self.sha256:
            return "sha256"
        return "size"

    @property
    def content_checked(self) -> bool:
        """True when some check covers the bytes, not only the size."""
        return self.kind != "size"


def rule_for(obj: ObjectInfo) -> ContentRule:
    """The checks an object gets (see the module docstring).

    Parameters
    ----------
    obj : ObjectInfo
        What the source says about the object.

    Returns
    -------
    ContentRule

    Examples
    --------
    >>> rule_for(ObjectInfo("k", 20 * MiB, "0" * 32 + "-3", None)).kind
    'multipart'
    """
    n = obj.multipart_parts
    part_sizes = tuple(part_size_candidates(obj.size, n)) if n else ()
    return ContentRule(
        md5=obj.md5, multipart=obj.multipart_digest if part_sizes else None,
        part_sizes=part_sizes, checksum=obj.checksum,
        sha256=obj.sha256.lower() if obj.sha256 else None,
    )


@dataclass
class FileDigests:
    """Digests of a byte stream computed in one pass for a rule.

    Parameters
    ----------
    part_size : int, optional
        Upload part size (per-part MD5s are kept when set).
    algorithms : sequence of str
        Whole-stream algorithms: ``md5``, ``sha256`` and CRC names.

    Examples
    --------
    >>> d = FileDigests(None, ["md5"])
    >>> d.update(b"abc")
    >>> d.result()["md5"]
    '900150983cd24fb0d6963f7d28e17f72'
    """

    part_size: int | None
    algorithms: Sequence[str]
    _hashers: dict[str, object] = field(default_factory=dict)
    _crcs: dict[str, int] = field(default_factory=dict)
    _part_md5s: list[bytes] = field(default_factory=list)
    _part: object = None
    _part_left: int = 0

    def __post_init__(self) -> None:
        self._hashers = {a: hashlib.new(a) for a in self.algorithms if a in ("md5", "sha256")}
        self._crcs = {a: 0 for a in self.algorithms if is_crc(a)}

    def update(self, data: bytes | memoryview) -> None:
        """Feed the next bytes.

        Parameters
        ----------
        data : bytes-like
            The next bytes of the stream.
        """
        for h in self._hashers.values():
            h.update(data)  # type: ignore[attr-defined]
        for name, value in self._crcs.items():
            self._crcs[name] = crc_update(name, data, value)
        if self.part_size:
            view = memoryview(data)
            while len(view):
                if self._part is None:
                    self._part, self._part_left = hashlib.md5(), self.part_size
                take = min(self._part_left, len(view))
                self._part.update(view[:take])  # type: ignore[attr-defined]
                self._part_left -= take
                view = view[take:]
                if self._part_left == 0:
                    self._part_md5s.append(self._part.digest())  # type: ignore[attr-defined]
                    self._part = None

    def append_crcs(self, crcs: dict[str, int], length: int) -> None:
        """Extend the CRCs by a following piece whose own CRCs are known (nothing is re-read).

        Parameters
        ----------
        crcs : dict
            ``{crc name: value}`` of the piece alone (every CRC this object computes).
        length : int
            Bytes in the piece.
        """
        for name, value in self._crcs.items():
            self._crcs[name] = crc_combine(name, value, crcs[name], length)

    def drop_parts(self) -> None:
        """Stop computing part MD5s (another check covers the bytes)."""
        self.part_size = None
        self._part = None
        self._part_md5s = []

    def result(self) -> dict[str, object]:
        """Hex digests, CRC values and (with a part size) the binary part MD5s.

        Returns
        -------
        dict
            ``{"md5": hex, "sha256": hex, "<crc>": int, "parts": [bytes, ...]}``.
        """
        out: dict[str, object] = {a: h.hexdigest() for a, h in self._hashers.items()}  # type: ignore[attr-defined]
        out.update(self._crcs)
        if self.part_size:
            parts = list(self._part_md5s)
            if self._part is not None:
                parts.append(self._part.digest())  # type: ignore[attr-defined]
            out["parts"] = parts
        return out


def mismatch(rule: ContentRule, digests: dict[str, object]) -> str | None:
    """What differs between computed digests and a rule, or ``None``.

    Parameters
    ----------
    rule : ContentRule
        The expected values.
    digests : dict
        ``md5``/``sha256`` hex, CRC ints, ``multipart`` hex (as computed).

    Returns
    -------
    str or None

    Examples
    --------
    >>> mismatch(ContentRule(md5="a" * 32), {"md5": "b" * 32}) is not None
    True
    """
    if rule.sha256 and digests.get("sha256") != rule.sha256:
        return f"SHA-256 {digests.get('sha256')} != published {rule.sha256}"
    if rule.checksum:
        name, want = rule.checksum
        got = digests.get(name)
        if got is not None:
            text = checksum_text(name, got if isinstance(got, int) else bytes.fromhex(str(got)))
            if text != want:
                return f"{name} checksum {text} != {want} sent by the server"
    if rule.md5 and digests.get("md5") != rule.md5:
        return f"MD5 {digests.get('md5')} != ETag {rule.md5}"
    if rule.multipart and digests.get("multipart") != rule.multipart:
        return f"MD5 of part MD5s {digests.get('multipart')} != ETag {rule.multipart}"
    return None


def algorithms_for(rule: ContentRule) -> list[str]:
    """Whole-stream algorithms a rule needs (``md5``, ``sha256``, a CRC).

    Parameters
    ----------
    rule : ContentRule
        The rule.

    Returns
    -------
    list of str

    Examples
    --------
    >>> algorithms_for(ContentRule(md5="a" * 32, checksum=("crc32", "x")))
    ['md5', 'crc32']
    """
    out = []
    if rule.md5:
        out.append("md5")
    if rule.sha256 or (rule.checksum and rule.checksum[0] == "sha256"):
        out.append("sha256")
    if rule.checksum and is_crc(rule.checksum[0]):
        out.append(rule.checksum[0])
    return out


def digest_file(path: str, rule: ContentRule, part_size: int | None = None,
                block: int = 8 * MiB, extra: Sequence[str] = ()) -> dict[str, object]:
    """Compute what ``rule`` needs over a file in one read (``verify``, fallbacks).

    Parameters
    ----------
    path : str
        The file.
    rule : ContentRule
        The rule.
    part_size : int, optional
        Upload part size for a multipart rule (default: its first candidate).
    block : int
        Read size.
    extra : sequence of str
        More whole-file algorithms to compute (e.g. the CRC the manifest keeps).

    Returns
    -------
    dict
        As :func:`mismatch` expects (``multipart`` included for multipart rules).

    Examples
    --------
    >>> digest_file(__file__, ContentRule(md5="0" * 32))["md5"] != ""
    True
    """
    size_for_parts = part_size or (rule.part_sizes[0] if rule.multipart else None)
    digests = FileDigests(size_for_parts, list(dict.fromkeys([*algorithms_for(rule), *extra])))
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digests.update(chunk)
    out = digests.result()
    if size_for_parts:
        out["multipart"] = multipart_etag(out.pop("parts"))  # type: ignore[arg-type]
    return out


__all__ = [
    "COMMON_PART_SIZES",
    "DEFAULT_RANGE_SIZE",
    "ETAG_NOT_CONTENT_HASH",
    "OPAQUE_ETAG",
    "ContentRule",
    "FileDigests",
    "algorithms_for",
    "checksum_text",
    "crc_combine",
    "crc_update",
    "digest_file",
    "is_crc",
    "mismatch",
    "multipart_etag",
    "part_size_candidates",
    "rule_for",
]
