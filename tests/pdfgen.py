"""A minimal, valid multi-page PDF writer for tests (Helvetica text, one line per page), and one
page with a ruled table (lines around every cell, as pdfplumber's table finder expects)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

LETTER = (612, 792)


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _text_stream(text: str, font_pt: float = 11) -> str:
    lines = [f"({_esc(line)}) Tj T*" for line in text.split("\n")]
    return f"BT /F1 {font_pt:g} Tf {font_pt * 14 / 11:g} TL 72 720 Td " + " ".join(lines) + " ET"


def _write(path: Path, pages: Sequence[tuple[str, tuple[int, int]]], rotate: int = 0) -> Path:
    """Write pages given as (content stream, (width, height)) with Helvetica as /F1."""
    objects: list[bytes] = []
    n = len(pages)
    # 1: catalog, 2: pages, 3: font, then (page, content) pairs
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, (content, (width, height)) in enumerate(pages):
        content_id = 5 + 2 * i
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {width} {height}] /Contents {content_id} 0 R "
                       f"/Resources << /Font << /F1 3 0 R >> >>{f' /Rotate {rotate}' if rotate else ''} >>".encode())
        stream = content.encode("latin-1")
        objects.append(b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.write_bytes(bytes(out))
    return path


def write_pdf(path: Path, pages: list[str], rotate: int = 0, font_pt: float = 11) -> Path:
    """Write ``pages`` (one text each, "\\n" between lines) to ``path``; ``rotate``: every page's /Rotate;
    ``font_pt``: the type size (the leading is 14/11 of it)."""
    return _write(path, [(_text_stream(text, font_pt), LETTER) for text in pages], rotate)


def table_page(rows: Sequence[Sequence[str]], before: str = "", after: str = "",
               col_width: int = 160, row_height: int = 16) -> tuple[str, tuple[int, int]]:
    """One page: the lines of ``before``, a table of ``rows`` (the first is the header) ruled with a
    line around every cell, then the lines of ``after``; the page is as tall as its content."""
    above, below = before.split("\n") if before else [], after.split("\n") if after else []
    width = 72 * 2 + col_width * max(len(r) for r in rows)
    height = 72 * 2 + 14 * (len(above) + len(below) + 2) + row_height * len(rows)
    ops: list[str] = []
    y = height - 72
    for line in above:
        ops.append(f"BT /F1 11 Tf 72 {y - 11} Td ({_esc(line)}) Tj ET")
        y -= 14
    top = y - 14
    n_cols = max(len(r) for r in rows)
    right = 72 + col_width * n_cols
    for i in range(len(rows) + 1):  # horizontal rules
        ops.append(f"72 {top - i * row_height} m {right} {top - i * row_height} l S")
    bottom = top - len(rows) * row_height
    for j in range(n_cols + 1):  # vertical rules
        ops.append(f"{72 + j * col_width} {top} m {72 + j * col_width} {bottom} l S")
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            ops.append(f"BT /F1 10 Tf {72 + j * col_width + 4} {top - (i + 1) * row_height + 4} Td "
                       f"({_esc(cell)}) Tj ET")
    y = bottom - 14
    for line in below:
        ops.append(f"BT /F1 11 Tf 72 {y - 11} Td ({_esc(line)}) Tj ET")
        y -= 14
    return "0.5 w\n" + "\n".join(ops), (width, height)


def write_table_pdf(path: Path, pages: Sequence[str | tuple[str, tuple[int, int]]]) -> Path:
    """Write pages that are either text (as :func:`write_pdf`) or a :func:`table_page`."""
    return _write(path, [(_text_stream(p), LETTER) if isinstance(p, str) else p for p in pages])


def encrypt_pdf(path: Path, user_password: str, owner_password: str = "owner-secret") -> Path:
    """Encrypt the PDF at ``path`` in place with pypdf (RC4-128: needs no crypto package); an empty
    ``user_password`` makes an owner-password-only PDF, which readers open without asking."""
    from pypdf import PdfWriter

    writer = PdfWriter(clone_from=str(path))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    with open(path, "wb") as f:
        writer.write(f)
    return path


def write_scanned_pdf(path: Path, pages: list[str], dpi: int = 300, rotate: int = 0,
                      page_pt: tuple[float, float] | None = None, font_pt: float = 11) -> Path:
    """Write ``pages`` as a *scanned* PDF: each is typeset as :func:`write_pdf` does, rendered to a grey
    image at ``dpi`` with pypdfium2, and the images saved as an image-only PDF (Pillow: no text layer).

    ``rotate`` sets every page's /Rotate; ``page_pt`` (width, height in points) stretches each page's
    image over a page of that size (a huge page from a small image).
    """
    import io

    import pypdfium2 as pdfium

    write_pdf(path, pages, font_pt=font_pt)
    pdf = pdfium.PdfDocument(path.read_bytes())
    try:
        images = []
        for i in range(len(pdf)):
            page = pdf[i]
            images.append(page.render(scale=dpi / 72, grayscale=True).to_pil().convert("L"))
            page.close()
    finally:
        pdf.close()
    resolution = dpi if page_pt is None else images[0].width * 72 / page_pt[0]
    out = io.BytesIO()
    images[0].save(out, format="PDF", save_all=True, append_images=images[1:], resolution=resolution)
    data = out.getvalue()
    if rotate:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
        for page in writer.pages:
            page.rotate(rotate)
        buf = io.BytesIO()
        writer.write(buf)
        data = buf.getvalue()
    path.write_bytes(data)
    return path


def wrap_pages(text: str, width: int = 90, lines: int = 48) -> list[str]:
    """``text`` wrapped into lines of at most ``width`` characters and cut into pages of ``lines`` lines
    (11 pt Helvetica fits about 90 characters across a letter page and 48 lines down it), for :func:`write_pdf`.

    Example:
        >>> wrap_pages("one two three four", width=9, lines=2)
        ['one two\\nthree', 'four']
    """
    import textwrap

    wrapped = textwrap.wrap(" ".join(text.split()), width=width) or [""]
    return ["\n".join(wrapped[i:i + lines]) for i in range(0, len(wrapped), lines)]
