"""The encrypted container backups are stored in, and the archive of named parts inside it.

A container is a plaintext header followed by AES-256-GCM chunks:

    magic "CIMSBAK" 0x01 | u32 header length | header (canonical JSON)
    then per chunk: u8 flag (0 = more follow, 1 = last) | u32 length | ciphertext with tag

The header names the backup, the time, the key id (SHA-256 of the public key's DER form) and
holds the data key, a fresh random 256-bit key wrapped with the recipient's RSA-3072 public key
(OAEP with SHA-256). Only the holder of the private key can unwrap it; the machine making
backups needs only the public key.

Chunk i is sealed with nonce = u64 i | u32 flag and with the SHA-256 of the whole header as
associated data, so a chunk moved to another place, a "more follow" flag turned into "last"
(truncation), a chunk from another backup (another header and data key) or any changed byte
fails its tag. A stream that ends before a chunk marked last, or goes on after it, is refused.

Inside, the plaintext is an archive of named parts, each streamed in blocks:

    part: "F" | u16 name length | name (UTF-8) | blocks: u32 length | bytes ... | u32 0
    end:  "Z"

Nothing here needs Django's settings, so the development stack can create keys before they
load; messages are translated when they are shown.
"""

import base64
import hashlib
import json
import os
import struct
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.utils.translation import gettext_lazy as _

MAGIC = b"CIMSBAK\x01"
FORMAT_VERSION = 1
CHUNK_SIZE = 1024 * 1024
# A header or chunk length beyond these is damage, not a reason to allocate gigabytes.
MAX_HEADER_BYTES = 64 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
TAG_BYTES = 16
RSA_BITS = 3072
KEY_WRAP = "RSA-OAEP-SHA256"
CIPHER = "AES-256-GCM"
MORE, LAST = 0, 1
_LENGTH = struct.Struct(">I")


class ContainerError(Exception):
    """The backup cannot be read as written: damaged, cut short, reordered or not a backup."""


class WrongKey(ContainerError):
    """The private key given is not the one the backup was encrypted for."""


def _oaep():
    # The label binds wrapped keys to this format: a key wrapped for something else won't unwrap.
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=MAGIC
    )


def key_id(public_key):
    """The fingerprint a backup names its key by: SHA-256 of the DER public key, in hex."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def load_public_key(path):
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < RSA_BITS:
        raise ValueError(
            _("%(path)s is not an RSA public key of at least %(bits)s bits.")
            % {"path": path, "bits": RSA_BITS}
        )
    return key


def load_private_key(path, password=None):
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=password)
    except TypeError as error:
        # Raised both for an encrypted key without a password and a password for a plain key.
        raise ValueError(f"{path}: {error}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(_("%(path)s is not an RSA private key.") % {"path": path})
    return key


def create_key_pair(private_path, public_path):
    """Write a new RSA-3072 key pair (PEM) unless the private key exists; return whether made.

    For development only: production makes its key elsewhere and gives the server the public
    half alone (docs/operations.md).
    """
    private_path, public_path = Path(private_path), Path(public_path)
    if private_path.exists():
        return False
    key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    private_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        # Exclusive creation: of two processes starting at once, one key wins.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as file:
        file.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return True


def _nonce(index, flag):
    return struct.pack(">QI", index, flag)


class ContainerWriter:
    """Encrypts what is written to it into `out` (a binary file), CHUNK_SIZE bytes a chunk.

    Memory stays at about one chunk whatever the size of the backup. close() seals the last
    chunk; a container never closed has no last chunk and is refused when read.
    """

    def __init__(self, out, public_key, *, backup_id, created_at, chunk_size=CHUNK_SIZE):
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise ValueError("chunk_size out of range")
        data_key = AESGCM.generate_key(bit_length=256)
        self.header = {
            "format": FORMAT_VERSION,
            "backup_id": str(backup_id),
            "created_at": created_at,
            "key_id": key_id(public_key),
            "key_wrap": KEY_WRAP,
            "cipher": CIPHER,
            "chunk_size": chunk_size,
            "wrapped_key": base64.b64encode(public_key.encrypt(data_key, _oaep())).decode(),
        }
        header = _encode_header(self.header)
        out.write(header)
        self._out, self._aead = out, AESGCM(data_key)
        self._associated = hashlib.sha256(header).digest()
        self._chunk_size, self._index = chunk_size, 0
        self._buffer = bytearray()
        self.bytes_in, self.bytes_out = 0, len(header)
        self.closed = False

    def write(self, data):
        self.bytes_in += len(data)
        view, size = memoryview(data), self._chunk_size
        if self._buffer:
            missing = size - len(self._buffer)
            self._buffer += view[:missing]
            view = view[missing:]
            if len(self._buffer) < size:
                return
            self._seal(self._buffer, MORE)
            self._buffer = bytearray()
        # Whole chunks straight from the caller's buffer, without copying them first.
        while len(view) >= size:
            self._seal(view[:size], MORE)
            view = view[size:]
        self._buffer += view

    def close(self):
        if not self.closed:
            self._seal(bytes(self._buffer), LAST)
            self._buffer.clear()
            self.closed = True

    def _seal(self, plaintext, flag):
        sealed = self._aead.encrypt(_nonce(self._index, flag), plaintext, self._associated)
        self._out.write(bytes([flag]) + _LENGTH.pack(len(sealed)) + sealed)
        self._index += 1
        self.bytes_out += 5 + len(sealed)


def _encode_header(header):
    body = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return MAGIC + _LENGTH.pack(len(body)) + body


def _read_exactly(source, size):
    data = source.read(size)
    while len(data) < size:
        more = source.read(size - len(data))
        if not more:
            break
        data += more
    return data


def read_header(source):
    """(header dict, raw header bytes) from the start of a container; no key needed."""
    magic = _read_exactly(source, len(MAGIC))
    if magic != MAGIC:
        raise ContainerError(_("This is not a CIMS backup (or its format is unknown)."))
    length_bytes = _read_exactly(source, _LENGTH.size)
    if len(length_bytes) < _LENGTH.size:
        raise ContainerError(_("The backup is truncated: its header is incomplete."))
    (length,) = _LENGTH.unpack(length_bytes)
    if length > MAX_HEADER_BYTES:
        raise ContainerError(_("The backup's header is damaged (impossible length)."))
    body = _read_exactly(source, length)
    if len(body) < length:
        raise ContainerError(_("The backup is truncated: its header is incomplete."))
    try:
        header = json.loads(body)
        if header["format"] != FORMAT_VERSION:
            raise ContainerError(
                _("The backup has format %(found)s; this version reads %(known)s.")
                % {"found": header["format"], "known": FORMAT_VERSION}
            )
        header["chunk_size"] = int(header["chunk_size"])
        base64.b64decode(header["wrapped_key"], validate=True)
    except (ValueError, KeyError, TypeError) as error:
        raise ContainerError(
            _("The backup's header is damaged (%(error)s).") % {"error": error}
        ) from None
    if not 0 < header["chunk_size"] <= MAX_CHUNK_SIZE:
        raise ContainerError(_("The backup's header is damaged (impossible chunk size)."))
    return header, MAGIC + length_bytes + body


class ContainerReader:
    """Decrypts a container from `source` (a binary file), checking every chunk as it goes."""

    def __init__(self, source, private_key):
        self.header, raw = read_header(source)
        expected = key_id(private_key.public_key())
        if self.header["key_id"] != expected:
            raise WrongKey(
                _(
                    "The backup was encrypted for key %(wanted)s…, "
                    "not for the key given (%(given)s…)."
                )
                % {"wanted": self.header["key_id"][:16], "given": expected[:16]}
            )
        try:
            data_key = private_key.decrypt(base64.b64decode(self.header["wrapped_key"]), _oaep())
        except ValueError:
            raise WrongKey(_("The backup's data key does not unwrap with the key given.")) from None
        self._source = source
        self._aead = AESGCM(data_key)
        self._associated = hashlib.sha256(raw).digest()

    def chunks(self):
        """Yield each chunk's plaintext in order; raise ContainerError at the first fault."""
        full = self.header["chunk_size"] + TAG_BYTES
        index = 0
        while True:
            prefix = _read_exactly(self._source, 1 + _LENGTH.size)
            if not prefix:
                raise ContainerError(
                    _("The backup is truncated: it ends after chunk %(n)s without its last chunk.")
                    % {"n": index}
                )
            if len(prefix) < 1 + _LENGTH.size:
                raise ContainerError(
                    _("The backup is truncated inside chunk %(n)s.") % {"n": index + 1}
                )
            flag, (length,) = prefix[0], _LENGTH.unpack(prefix[1:])
            if flag not in (MORE, LAST) or length > full or (flag == MORE and length != full):
                raise ContainerError(_("Chunk %(n)s of the backup is damaged.") % {"n": index + 1})
            sealed = _read_exactly(self._source, length)
            if len(sealed) < length:
                raise ContainerError(
                    _("The backup is truncated inside chunk %(n)s.") % {"n": index + 1}
                )
            try:
                plaintext = self._aead.decrypt(_nonce(index, flag), sealed, self._associated)
            except InvalidTag:
                raise ContainerError(
                    _(
                        "Chunk %(n)s of the backup is damaged, out of place or from another "
                        "backup: it does not authenticate."
                    )
                    % {"n": index + 1}
                ) from None
            yield plaintext
            index += 1
            if flag == LAST:
                if self._source.read(1):
                    raise ContainerError(_("The backup has data after its last chunk."))
                return


# The archive of named parts ----------------------------------------------------------------

PART, END = b"F", b"Z"
_NAME_LENGTH = struct.Struct(">H")


class ArchiveWriter:
    """Writes named parts, each streamed in blocks, into a ContainerWriter."""

    def __init__(self, container):
        self._container = container
        self._open = False

    def begin(self, name):
        if self._open:
            raise RuntimeError("end() the previous part first")
        encoded = name.encode()
        self._container.write(PART + _NAME_LENGTH.pack(len(encoded)) + encoded)
        self._open = True

    def write(self, data):
        # Blocks of at most one chunk, so a reader never holds more than that of one part.
        for start in range(0, len(data), CHUNK_SIZE):
            block = memoryview(data)[start : start + CHUNK_SIZE]
            self._container.write(_LENGTH.pack(len(block)))
            self._container.write(block)

    def end(self):
        self._container.write(_LENGTH.pack(0))
        self._open = False

    def close(self):
        self._container.write(END)
        self._container.close()


class _ByteStream:
    """Reads exact byte counts from an iterator of chunks."""

    def __init__(self, chunks):
        self._chunks, self._buffer, self._position = chunks, b"", 0

    def read(self, size):
        parts, wanted = [], size
        while wanted:
            if self._position >= len(self._buffer):
                self._buffer, self._position = next(self._chunks, None), 0
                if self._buffer is None:
                    self._buffer = b""
                    break
                continue
            piece = self._buffer[self._position : self._position + wanted]
            self._position += len(piece)
            wanted -= len(piece)
            parts.append(piece)
        return b"".join(parts)

    def at_end(self):
        return self.read(1) == b""


def read_parts(reader):
    """Yield (name, blocks) for each part; `blocks` must be consumed before the next part."""
    stream = _ByteStream(reader.chunks())
    while True:
        kind = stream.read(1)
        if kind == END:
            if not stream.at_end():
                raise ContainerError(_("The backup's archive has data after its end."))
            return
        if kind != PART:
            raise ContainerError(_("The backup's archive is damaged (unknown record)."))
        length_bytes = stream.read(_NAME_LENGTH.size)
        (length,) = _NAME_LENGTH.unpack(length_bytes)
        name = stream.read(length).decode()
        consumed = []
        yield name, _blocks(stream, consumed)
        if not consumed:
            raise RuntimeError(f"part {name} was not read to its end")


def _blocks(stream, consumed):
    while True:
        length_bytes = stream.read(_LENGTH.size)
        if len(length_bytes) < _LENGTH.size:
            raise ContainerError(_("The backup's archive is damaged (a part is cut short)."))
        (length,) = _LENGTH.unpack(length_bytes)
        if length == 0:
            consumed.append(True)
            return
        data = stream.read(length)
        if len(data) < length:
            raise ContainerError(_("The backup's archive is damaged (a part is cut short)."))
        yield data
