"""Files the tool writes on the operator's machine (known_hosts, a saved restic key): written whole or not at all."""
from __future__ import annotations

import os
import tempfile


def replace_file(path: str | os.PathLike, data: bytes, mode: int) -> None:
    """``path`` becomes ``data`` with ``mode``: written under a temporary name in the same folder (mode 600 from
    its creation, so a secret is never readable by others on the way), flushed to disk, then renamed over it. A
    failure leaves ``path`` as it was and no temporary file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
