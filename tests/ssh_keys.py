"""SSH keys for the tests (made with ssh-keygen; the private halves were thrown away),
and the fingerprint `ssh-keygen -lf` prints for each."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAWbTMKrL7MW4cMMB6d1TFdfQFAFUZRnxBaRRP0KOpmw me@lab"
RSA_2048 = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCnnNP8H5gB6ocWUQ2s2ysDiGzPh2Xt9HFJjrKlzP24Qm8T"
    "HiIBUAEqm/0rkAkdQWFwfu7KIfxKmcO0B83hwE40Q0OcwJQHtY8l+VX2rigrlVC8WdZIY2uptQTkudf44JD/"
    "pgeMxXjzZ5Cpx9ZKfV4xurLjtiab3O3BBnItvXag2d9YDVZlCPpgYvHfodJj21PxAZOW97eaztejxXHwIfiP"
    "AP6ngaNsqwexk5PoFs4ckwSPyDUhtFmcFl/9RSmn0GZkKccj1gQD0FFgjRZkoMWwp3u3hCs8UywooJbStFNT"
    "lI+9fTIS9mvIX+UrjXluGwdEXUbknckVMhxQSDNSAZP1 rsa@lab"
)
ECDSA_384 = (
    "ecdsa-sha2-nistp384 AAAAE2VjZHNhLXNoYTItbmlzdHAzODQAAAAIbmlzdHAzODQAAABhBKDU1nsxkFDM"
    "81oDk9mgwoYgS39qNaEzOQON6ruv+qqETa9rXvQ5yn0i366VyN6H5X/SDNSiBb7U3DLJpSQ+kkXB6lRkXFBp"
    "Kz5o/yEk86e/7vTPthsmrvHNbGJOQkbDvg== ec@lab"
)
RSA_1024 = (
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAAgQC1dBk7SHkVlD4ilYawdFZWjwT1BwZvYvvy4d2Vfjd+HXxB"
    "1P+XzP9TqhK9MU+KVyHAdoUtirZ39GUcoEz6Sc5RMSaRuBKq+mUqaUS+1czMTtlmOKgFqEaV65cFFh6GI3o3"
    "0dq1sgqhCocHS1gJeGo2xmTd18KJ1Bnp9M59cAn5FQ== root@vm"
)
DSA = (
    "ssh-dss AAAAB3NzaC1kc3MAAACBAPOc7xmWRstVkOco1E9NaZ5pITn20+piKadU0BpYSBDI+dRzc4Pn5u3Y"
    "qewHbysvnuc19mGZSAlyL4IHTQm3fn4n71oXrwlrKCvxpYBD0vGFTZ12X8hZDf6mPooyAvd7BHkSN7JN32sf"
    "cZjxUCfTWv/6TGpE6MY0ZTU88r7MIaAHAAAAFQDSECmaPyHqRGyepzA+FGnRMBvLdwAAAIEAqX7E1sGI+on2"
    "H4ATjI0IqDMHHn44ou6V0Q8TuEaG9zfwSyK8vJ4rNn1FGZaySUlQKcUC3TJ1Ft3cH4lXP1jctV2eCmb6ZH0e"
    "k1VrHl1urNIr3C85yizwnDWSwFttB16AtVEIxejbj8335cTgC02kwYd1+WZrTS1kkQvyxJggo3UAAACAePxK"
    "aesYXu0VqpuuRzI7QpmmHsghioU9MCq+de0J9ND6c8rllbtWc9/b06vLVkC0DsxniDb6gZGCDQd3w67ikazE"
    "S9u+2SP61NnSvsmayttpbeGpgPlaOkbkfPSOt27BrpI8mSyBx8K7nA9U8gT6/WpNju5ekhL8vAUeKg30QNA="
    " root@vm"
)

# Printed by `ssh-keygen -lf` when these were made (used where ssh-keygen is missing).
RECORDED_FINGERPRINTS = {
    ED25519: "SHA256:OzKozAWZp/Di1yu12nl3jqKYg9pzqT4+Yb0sd0vE0qU",
    RSA_2048: "SHA256:peaUC07BWOAShSXxv4xJb/gfMpnAM9W3R0dagm/2Svk",
    ECDSA_384: "SHA256:bt3Jkhz0r6hotZKQDcCr3IanosBN/rznabyvToKOZzU",
}


def keygen_fingerprint(public_key: str) -> str:
    """What `ssh-keygen -lf` prints as the key's fingerprint (the recorded value when
    ssh-keygen is not installed)."""
    if shutil.which("ssh-keygen") is None:
        return RECORDED_FINGERPRINTS[public_key]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "key.pub"
        path.write_text(public_key + "\n")
        printed = subprocess.run(
            ["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True
        ).stdout
    return printed.split()[1]


def private_key_text() -> str:
    """A fresh private key in OpenSSH's format, as someone might paste it by mistake."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
        .decode()
    )


def new_ed25519(comment: str = "") -> str:
    """A fresh public key (unique per call: for tests that share a cloud)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    public = ed25519.Ed25519PrivateKey.generate().public_key()
    line = public.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return f"{line} {comment}".strip()
