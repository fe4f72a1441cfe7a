"""The one grid drawer: a title, column headers, row labels and a tile per cell. Generation draws a contact
sheet per prompt (styles as columns, seeds and swept settings as rows); training draws its validation grids
and evaluation its sample grids (prompts as rows, seeds as columns) with it too."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

MAX_TILE = 256  # large renders are shown scaled down so a 24-style sheet stays viewable
PAD = 6
FONT_SIZE = 12
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MISSING = (225, 225, 225)


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (OSError, TypeError):  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def _text_width(font, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _clip(font, text: str, width: int) -> str:
    if _text_width(font, text) <= width:
        return text
    while text and _text_width(font, text + "...") > width:
        text = text[:-1]
    return text + "..."


def contact_sheet(title: str, columns: list[str], rows: list[str],
                  cells: dict[tuple[int, int], Image.Image | Path | None], image_size: tuple[int, int]) -> Image.Image:
    """A grid of the images (or image files) in `cells[(row, column)]`; a missing one shows as a grey tile."""
    font = _font()
    scale = min(1.0, MAX_TILE / max(image_size))
    tile_w, tile_h = max(1, round(image_size[0] * scale)), max(1, round(image_size[1] * scale))
    line = FONT_SIZE + PAD
    col_w = max([tile_w] + [_text_width(font, c) for c in columns]) + PAD
    label_w = max([_text_width(font, r) for r in rows] + [0]) + 2 * PAD
    width = label_w + col_w * len(columns) + PAD
    top = 2 * line + PAD  # title line, then column headers
    height = top + (tile_h + PAD) * len(rows) + PAD

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    draw.text((PAD, PAD), _clip(font, title, width - 2 * PAD), fill=INK, font=font)
    for c, name in enumerate(columns):
        draw.text((label_w + c * col_w, PAD + line), name, fill=INK, font=font)
    for r, label in enumerate(rows):
        y = top + r * (tile_h + PAD)
        draw.text((PAD, y + tile_h // 2 - FONT_SIZE // 2), label, fill=INK, font=font)
        for c in range(len(columns)):
            x = label_w + c * col_w
            tile = _tile(cells.get((r, c)), (tile_w, tile_h))
            if tile is not None:
                sheet.paste(tile, (x, y))
            else:
                draw.rectangle((x, y, x + tile_w - 1, y + tile_h - 1), fill=MISSING)
    return sheet


def _tile(cell: Image.Image | Path | None, size: tuple[int, int]) -> Image.Image | None:
    if isinstance(cell, Image.Image):
        image = cell.convert("RGB")
    elif cell is not None and Path(cell).is_file():
        with Image.open(cell) as im:
            image = im.convert("RGB")
    else:
        return None
    return image if image.size == size else image.resize(size, Image.Resampling.LANCZOS)


def prompt_grid(title: str, prompts: list[str], images: list[Image.Image], per_prompt: int,
                seeds: list[int]) -> Image.Image:
    """`per_prompt` images for each prompt, in prompt order: one row per prompt, a column per seed."""
    cells = {(i // per_prompt, i % per_prompt): image for i, image in enumerate(images)}
    return contact_sheet(title, [f"seed {seed}" for seed in seeds], prompts, cells, images[0].size)
