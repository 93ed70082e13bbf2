"""A minimal, valid multi-page PDF writer for tests (Helvetica text, one line per page)."""

from __future__ import annotations

from pathlib import Path


def _esc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: list[str], rotate: int = 0, font_pt: float = 11) -> Path:
    """Write ``pages`` (one text each, "\\n" between lines) to ``path``; ``rotate``: every page's /Rotate;
    ``font_pt``: the type size (the leading is 14/11 of it)."""
    objects: list[bytes] = []
    n = len(pages)
    # 1: catalog, 2: pages, 3: font, then (page, content) pairs
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode())
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    for i, text in enumerate(pages):
        content_id = 5 + 2 * i
        objects.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
                       f"/Resources << /Font << /F1 3 0 R >> >>{f' /Rotate {rotate}' if rotate else ''} >>".encode())
        lines = [f"({_esc(line)}) Tj T*" for line in text.split("\n")]
        stream = (f"BT /F1 {font_pt:g} Tf {font_pt * 14 / 11:g} TL 72 720 Td " + " ".join(lines)
                  + " ET").encode("latin-1")
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
