"""One source per patch: a patch found in two sources of a pass is an error, not "first wins".

``PatchOrigins(pass_name)`` remembers the source each ``patch_index`` was first read from;
``check(index, name, source)`` raises :class:`DuplicatePatchError` naming the patch and both
sources when a second source holds it. The error is not an ``ImageryInputError``: ``--skip-bad``
does not skip it, since either copy could be the one meant.
"""

from __future__ import annotations

from bigearthnet_txt.errors import InputError


class DuplicatePatchError(InputError):
    """A patch occurs in two sources of one pass; ``patch`` and ``sources`` name them."""

    def __init__(self, message: str, *, patch: str, sources: tuple[str, str]):
        super().__init__(message)
        self.patch, self.sources = patch, sources

    def __reduce__(self):
        return _rebuild, (str(self), self.patch, self.sources)


def _rebuild(message: str, patch: str, sources: tuple[str, str]) -> DuplicatePatchError:
    return DuplicatePatchError(message, patch=patch, sources=sources)


class PatchOrigins:
    """The first source of every patch read in one pass."""

    def __init__(self, pass_name: str):
        self.pass_name = pass_name
        self.first: dict[int, object] = {}

    def check(self, index: int, name: str, source: object) -> None:
        """Record ``source`` for ``index``; raise when another source gave it already."""
        first = self.first.setdefault(index, source)
        if first != source:
            raise DuplicatePatchError(
                f"patch {name} is in two {self.pass_name} sources, {first} and {source}; give "
                "each patch in one source only (remove one of the copies or one of the sources)",
                patch=name,
                sources=(str(first), str(source)),
            )
