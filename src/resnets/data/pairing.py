"""How each image of a segmentation folder finds its mask: one rule for 2D images and 3D
volumes alike (`--mask-pattern`).

- no pattern: DIR/images/NAME.EXT pairs with DIR/masks/NAME.EXT' or NAME_mask.EXT' (any
  extension, any case; the usual suffixes are MASK_SUFFIXES);
- `'{stem}_gt.png'`: the mask's name in DIR/masks/, `{stem}` the image's name without its
  extension (`*` matches any text);
- `'images/{id}_training.tif=1st_manual/{id}_manual1.gif'`: both sides are paths inside DIR,
  for sets that name their folders and files otherwise (DRIVE). Each `{field}` of the image
  side matches a run of characters of the file name, and the mask side is written from them.

A mask that cannot be found leaves its image out, with the file that was looked for named.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, UsageError

MASK_SUFFIXES = ("", *"_mask -mask _masks _segmentation _seg _label _labels _gt _anno".split())
DOUBLE_SUFFIXES = (".nii.gz",)  # one extension written as two
FIELD = re.compile(r"\{(\w+)\}")


def file_stem(path: Path) -> str:
    """A file's name without its extension (`a.png` -> `a`, `a.nii.gz` -> `a`)."""
    name = path.name
    for suffix in DOUBLE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


@dataclass(frozen=True)
class PairRule:
    """A `--mask-pattern` read: where images and masks lie, how an image's name is read
    (`image`: a regex with named fields, or None for every file and its stem) and how its
    mask's name is written (`mask`: a template of those fields, or None for the usual
    suffixes)."""

    images: str
    masks: str
    image: re.Pattern | None = None
    mask: str | None = None

    def looked_for(self, image: Path) -> str:
        """The mask path this rule looks for, as the user would write it."""
        if self.mask is None:
            return f"{self.masks}/{file_stem(image)}[_mask, _seg, ...].*"
        return f"{self.masks}/{self._mask_name(image)}"

    def fields(self, image: Path) -> dict[str, str] | None:
        if self.image is None:
            return {"stem": file_stem(image)}
        found = self.image.fullmatch(image.name)
        return found.groupdict() if found else None

    def _mask_name(self, image: Path) -> str:
        fields = self.fields(image) or {}
        return FIELD.sub(lambda m: fields.get(m.group(1), m.group(0)), self.mask or "")


def parse_rule(pattern: str | None) -> PairRule:
    """The rule a `--mask-pattern` says (see the module's docstring); refused in one line
    when a mask field is not read from the image."""
    if not pattern:
        return PairRule("images", "masks")
    if "=" not in pattern:
        if "/" in pattern:
            raise UsageError(
                f"--mask-pattern {pattern!r}: a mask name takes no folder; to name both folders "
                "write IMAGES=MASKS, e.g. 'images/{id}_training.tif=1st_manual/{id}_manual1.gif'"
            )
        _check_fields(pattern, {"stem"}, pattern)
        return PairRule("images", "masks", None, pattern)
    left, right = (side.strip().strip("/") for side in pattern.split("=", 1))
    if "/" not in left or "/" not in right:
        raise UsageError(
            f"--mask-pattern {pattern!r}: each side of IMAGES=MASKS is FOLDER/NAME inside the "
            "data folder, e.g. 'images/{id}_training.tif=1st_manual/{id}_manual1.gif'"
        )
    (images, image), (masks, mask) = left.rsplit("/", 1), right.rsplit("/", 1)
    for folder in (images, masks):
        if FIELD.search(folder) or "*" in folder:
            raise UsageError(f"--mask-pattern {pattern!r}: folders take no {{field}} nor *")
    names = FIELD.findall(image)
    if not names:
        raise UsageError(
            f"--mask-pattern {pattern!r}: the image side needs a {{field}} to name its mask "
            "by, e.g. images/{id}_training.tif"
        )
    _check_fields(mask, set(names), pattern)
    return PairRule(images, masks, _regex(image), mask)


def _check_fields(mask: str, known: set[str], pattern: str) -> None:
    unknown = sorted(set(FIELD.findall(mask)) - known)
    if unknown or not FIELD.search(mask):
        given = ", ".join(f"{{{k}}}" for k in sorted(known))
        raise UsageError(
            f"--mask-pattern {pattern!r}: the mask name must be made of {given} (and text, "
            "* for any), e.g. '{stem}_mask.png'"
        )


def _regex(name: str) -> re.Pattern:
    """A file-name pattern with {fields} and * as a case-insensitive regex."""
    out, seen = "", set()
    for part in re.split(r"(\{\w+\}|\*)", name):
        if part == "*":
            out += ".*"
        elif FIELD.fullmatch(part):
            key = part[1:-1]
            out += f"(?P={key})" if key in seen else f"(?P<{key}>.+?)"
            seen.add(key)
        else:
            out += re.escape(part)
    return re.compile(out, re.IGNORECASE)


def image_folder(root: Path, pattern: str | None) -> Path:
    return root / parse_rule(pattern).images


def pair_masks(
    root: Path, pattern: str | None, is_input
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, str]], str]:
    """(image, mask) pairs under `root` by the rule of `pattern`; the images left without a
    mask, each with the mask path looked for; and a note on how they were paired.
    `is_input(path)`: whether a file is an image (2D) or a volume (3D)."""
    rule = parse_rule(pattern)
    images_dir, masks_dir = root / rule.images, root / rule.masks
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise DataError(
                f"{folder} is not a folder: {root} needs {rule.images}/ and {rule.masks}/ "
                "(or --mask-pattern IMAGES=MASKS naming its folders)"
            )
    masks = [m for m in sorted(masks_dir.iterdir()) if is_input(m) and not m.name.startswith(".")]
    images = [
        p
        for p in sorted(images_dir.iterdir())
        if is_input(p) and not p.name.startswith(".") and rule.fields(p) is not None
    ]
    if not images:
        raise DataError(f"{images_dir} holds no input files that --mask-pattern {pattern!r} reads")
    pairs, missing = [], []
    for image in images:
        found = _candidates(rule, image, masks)
        if len(found) > 1:
            raise DataError(
                f"{image} matches both {found[0]} and {found[1]}; remove one or pass "
                "--mask-pattern naming the masks, e.g. '{stem}_mask.png'"
            )
        if found:
            pairs.append((image, found[0]))
        else:
            missing.append((image, rule.looked_for(image)))
    if not pairs:
        image, looked = missing[0]
        raise DataError(
            f"no image in {images_dir} has a mask: for {image.name} it looked for {looked}; "
            "name the masks like the images (a suffix such as _mask is fine) or pass "
            "--mask-pattern, e.g. '{stem}_x.png' or 'images/{id}.tif=labels/{id}_seg.gif'"
        )
    return pairs, missing, _note(rule, pairs, pattern)


def without_masks(
    missing: list[tuple[Path, str]], strict: bool, unit: str = "images"
) -> str | None:
    """The note on the inputs that had no mask (left out), or with `strict` an error naming the
    first and the file looked for."""
    if not missing:
        return None
    first, looked = missing[0]
    if strict:
        raise DataError(
            f"{first} has no mask (looked for {looked}); add it, or drop --strict to leave "
            f"{unit} without a mask out"
        )
    many = f"{len(missing)} {unit}" if len(missing) > 1 else f"1 {unit.rstrip('s')}"
    return f"{many} without a mask left out, e.g. {first.name} (looked for {looked})"


def _candidates(rule: PairRule, image: Path, masks: list[Path]) -> list[Path]:
    if rule.mask is None:
        stem = file_stem(image).lower()
        names = {stem + s for s in MASK_SUFFIXES}
        return [m for m in masks if file_stem(m).lower() in names]
    wanted = rule.looked_for(image).rsplit("/", 1)[1].lower()
    return [m for m in masks if fnmatch.fnmatchcase(m.name.lower(), wanted)]


def _note(rule: PairRule, pairs: list[tuple[Path, Path]], pattern: str | None) -> str:
    if pattern:
        return f"masks paired by --mask-pattern {pattern!r} ({rule.images}/ with {rule.masks}/)"
    added = {file_stem(m)[len(file_stem(i)) :] for i, m in pairs}
    named = ", ".join(sorted(f"+{s}" if s else "the same name" for s in added))
    return f"masks paired by name in {rule.images}/ and {rule.masks}/: {named}"
