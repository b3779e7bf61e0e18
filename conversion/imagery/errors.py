"""The error raised for bad imagery input."""

from __future__ import annotations

from bigearthnet_txt.errors import InputError


class ImageryInputError(InputError):
    """Bad imagery input: the message names the file (``path``) and/or patch (``patch``) at fault.

    ``kind`` is a short machine-readable reason (``corrupt-geotiff``, ``missing-band``,
    ``wrong-shape``, ``wrong-dtype``, ``missing-s1``, ``missing-s2``, ``missing-reference-map``,
    ``truncated-archive``, ``unsafe-member``, ``unreadable``, ``foreign-band``, ``duplicate-band``,
    ``oversized-member``, ``no-georeference``) used in the ``--skip-bad`` report.
    """

    def __init__(
        self, message: str, *, kind: str, path: str | None = None, patch: str | None = None
    ):
        super().__init__(message)
        self.kind = kind
        self.path = path
        self.patch = patch

    def __reduce__(self):
        return _rebuild, (str(self), self.kind, self.path, self.patch)

    def to_record(self) -> dict[str, str | None]:
        """A JSON-ready record for the skip-bad report."""
        return {"kind": self.kind, "patch": self.patch, "path": self.path, "message": str(self)}


def _rebuild(message: str, kind: str, path: str | None, patch: str | None) -> ImageryInputError:
    return ImageryInputError(message, kind=kind, path=path, patch=patch)
