"""Who made an export: an Ed25519 signature of manifest.json in OpenSSH's signature format (SSHSIG, as
`ssh-keygen -Y sign` writes it), so that a reviewer can check it with SIDE Inspector (`side verify --trust`) or with
OpenSSH alone. The key is the auditor's: an OpenSSH Ed25519 private key (ssh-keygen -t ed25519) or one that
`side keygen` makes. The cryptography is PyCA's `cryptography`; only the format's framing is written here.

The signed blob and the signature follow OpenSSH's PROTOCOL.sshsig: the message is hashed (SHA-512) and the
signature covers "SSHSIG", the namespace, a reserved string, the hash's name and the hash."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError

SIGNATURE = "manifest.json.sig"
NAMESPACE = "side-evidence"  # what the signature is for: a key's signature of anything else never passes as ours
MAGIC = b"SSHSIG"
HASH = "sha512"
KEY_TYPE = b"ssh-ed25519"
BEGIN, END = "-----BEGIN SSH SIGNATURE-----", "-----END SSH SIGNATURE-----"
MAX_KEY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Signer:
    """The public half of a key, as README.txt, the PDF and verify name it."""

    public_key: str  # "ssh-ed25519 AAAA..." (OpenSSH's one-line form, no comment)
    fingerprint: str  # "SHA256:..." as `ssh-keygen -l` prints it


def _string(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def _read_string(data: bytes, at: int) -> tuple[bytes, int]:
    if at + 4 > len(data):
        raise ValueError("truncated")
    (n,) = struct.unpack(">I", data[at:at + 4])
    if at + 4 + n > len(data):
        raise ValueError("truncated")
    return data[at + 4:at + 4 + n], at + 4 + n


def _key_blob(raw: bytes) -> bytes:
    return _string(KEY_TYPE) + _string(raw)


def signer_of(raw_public: bytes) -> Signer:
    blob = _key_blob(raw_public)
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return Signer(f"{KEY_TYPE.decode()} {base64.b64encode(blob).decode()}", f"SHA256:{digest}")


def _to_sign(message: bytes) -> bytes:
    return MAGIC + _string(NAMESPACE.encode()) + _string(b"") + _string(HASH.encode()) + _string(
        hashlib.sha512(message).digest())


# ----- keys ---------------------------------------------------------------------------------------------------------
def _read_key_file(path: Path) -> bytes:
    try:
        if path.stat().st_size > MAX_KEY_BYTES:
            raise InputError(path, "is too large to be a key file")
        return path.read_bytes()
    except OSError as e:
        raise InputError(path, f"cannot read the key ({e.strerror})") from None


def load_private_key(path: str | Path, passphrase: bytes | None = None):
    """An Ed25519 private key from an OpenSSH (or PKCS#8 PEM) key file. A passphrase-protected key needs the
    passphrase; anything else is an InputError naming the file."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path).expanduser()
    data = _read_key_file(path)
    openssh = data.lstrip().startswith(b"-----BEGIN OPENSSH PRIVATE KEY-----")
    load = serialization.load_ssh_private_key if openssh else serialization.load_pem_private_key
    try:
        key = load(data, passphrase)
    except TypeError:  # encrypted and no passphrase given, or a passphrase given for a plain key
        if passphrase is None:
            raise InputError(path, "the key is protected by a passphrase: give it (SIDE_KEY_PASSPHRASE, or at "
                             "the prompt)") from None
        key = load(data, None)
    except ValueError:
        raise InputError(path, "wrong passphrase, or not a private key file (OpenSSH or PEM)" if passphrase
                         else "not a private key file (OpenSSH or PEM)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise InputError(path, "an export is signed with an Ed25519 key (ssh-keygen -t ed25519, or side keygen)")
    return key


def public_of(private_key) -> Signer:
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return signer_of(raw)


def load_public_key(path: str | Path) -> Signer:
    """A trusted key: the first line of an OpenSSH public key file ("ssh-ed25519 AAAA... comment")."""
    path = Path(path).expanduser()
    text = _read_key_file(path).decode("utf-8", errors="replace").strip()
    parts = text.split()
    try:
        if len(parts) < 2 or parts[0] != KEY_TYPE.decode():
            raise ValueError
        blob = base64.b64decode(parts[1], validate=True)
        kind, at = _read_string(blob, 0)
        raw, end = _read_string(blob, at)
        if kind != KEY_TYPE or len(raw) != 32 or end != len(blob):
            raise ValueError
    except ValueError:
        raise InputError(path, "not an Ed25519 public key in OpenSSH's form (ssh-ed25519 AAAA...)") from None
    return signer_of(raw)


def keygen(path: str | Path, comment: str = "") -> Signer:
    """A new Ed25519 key: the private half in OpenSSH's format at path (mode 600), the public at path.pub."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path = Path(path).expanduser()
    pub = path.with_name(path.name + ".pub")
    for p in (path, pub):
        if p.exists():
            raise InputError(p, "already exists: choose another name (a key is never overwritten)")
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    signer = public_of(key)
    pub.write_text(signer.public_key + (f" {comment}" if comment else "") + "\n", encoding="utf-8")
    return signer


# ----- signatures ---------------------------------------------------------------------------------------------------
def sign(message: bytes, private_key) -> str:
    """The armored signature of message, as `ssh-keygen -Y sign -n side-evidence` writes it."""
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signature = _string(KEY_TYPE) + _string(private_key.sign(_to_sign(message)))
    blob = (MAGIC + struct.pack(">I", 1) + _string(_key_blob(raw)) + _string(NAMESPACE.encode()) + _string(b"")
            + _string(HASH.encode()) + _string(signature))
    text = base64.b64encode(blob).decode()
    return "\n".join([BEGIN, *(text[i:i + 70] for i in range(0, len(text), 70)), END]) + "\n"


def check(message: bytes, armored: str) -> Signer:
    """The signer of a valid signature of message; ValueError saying why otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    lines = [line.strip() for line in armored.strip().splitlines()]
    if len(lines) < 3 or lines[0] != BEGIN or lines[-1] != END:
        raise ValueError("not an SSH signature")
    try:
        blob = base64.b64decode("".join(lines[1:-1]), validate=True)
    except ValueError:
        raise ValueError("not an SSH signature (bad base64)") from None
    if blob[:6] != MAGIC or blob[6:10] != struct.pack(">I", 1):
        raise ValueError("not an SSH signature of version 1")
    key, at = _read_string(blob, 10)
    namespace, at = _read_string(blob, at)
    _, at = _read_string(blob, at)  # reserved
    hash_name, at = _read_string(blob, at)
    signature, at = _read_string(blob, at)
    kind, k = _read_string(key, 0)
    raw, _ = _read_string(key, k)
    if kind != KEY_TYPE or len(raw) != 32:
        raise ValueError(f"signed with a {kind.decode(errors='replace')!r} key, not Ed25519")
    if namespace != NAMESPACE.encode():
        raise ValueError(f"a signature for {namespace.decode(errors='replace')!r}, not for an evidence export")
    if hash_name != HASH.encode():
        raise ValueError(f"hash {hash_name.decode(errors='replace')!r}, this engine checks {HASH}")
    sig_kind, s = _read_string(signature, 0)
    sig, _ = _read_string(signature, s)
    if sig_kind != KEY_TYPE:
        raise ValueError("not an Ed25519 signature")
    try:
        Ed25519PublicKey.from_public_bytes(raw).verify(sig, _to_sign(message))
    except InvalidSignature:
        raise ValueError("does not match manifest.json (changed since it was signed, or a forged signature)") from None
    return signer_of(raw)
