"""Small real files of the formats :mod:`rag.ingest.formats` reads, written in the test (no fixtures on disk)."""

from __future__ import annotations

import datetime
import zipfile
from pathlib import Path

EPUB_CONTAINER = ('<?xml version="1.0"?><container version="1.0" '
                  'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
                  '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
                  '</rootfiles></container>')
#: an encryption.xml that encrypts the first chapter with AES (what DRM does)
EPUB_DRM = ('<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            '<enc:CipherData><enc:CipherReference URI="OEBPS/text/chapter%201.xhtml"/></enc:CipherData>'
            '</enc:EncryptedData></encryption>')


def write_pptx(path: Path) -> Path:
    """Two slides: a title and body with speaker notes, then a title and a table; no core title."""
    from pptx import Presentation
    from pptx.util import Inches

    prs = Presentation()
    first = prs.slides.add_slide(prs.slide_layouts[1])
    first.shapes.title.text = "Watering rota"
    first.placeholders[1].text = "Beds are watered on Mondays\nand Thursdays by the duty member."
    first.notes_slide.notes_text_frame.text = "Remind new members where the hose is."
    second = prs.slides.add_slide(prs.slide_layouts[5])
    second.shapes.title.text = "Fees"
    table = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(1.5)).table
    for r, row in enumerate([("Item", "Fee"), ("Allotment plot", "45 euros a year"),
                             ("Tool shed key", "10 euros deposit")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    prs.save(path)
    return path


def write_xlsx(path: Path) -> Path:
    """Sheets "Stock" (a blank first row and column, a gap row, a formula with no cached value),
    an empty "Scratch" and "Staff"; the core title "Garden accounts"."""
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Stock"
    ws.append([])
    ws.append([None, "Item", "Quantity", "Delivered"])
    ws.append([None, "Copper slug tape", 12.0, datetime.datetime(2024, 5, 1)])
    ws.append([])
    ws.append([None, "Seed potatoes", 40, datetime.datetime(2024, 3, 15, 9, 30)])
    ws.append([None, "Total", "=C3+C5", None])
    wb.create_sheet("Scratch")
    staff = wb.create_sheet("Staff")
    staff.append(["Name", "Role"])
    staff.append(["Ada Lovelace", "Treasurer"])
    wb.properties.title = "Garden accounts"
    wb.save(path)
    return path


def write_csv(path: Path) -> Path:
    """Semicolon-separated, a quoted field with a line break, a blank line."""
    path.write_text('plot;holder;crop\n7;Grace Hopper;"runner beans,\nsweet peas"\n\n12;Alan Turing;rhubarb\n',
                    encoding="utf-8")
    return path


def write_epub(path: Path, chapters: list[str], title: str = "The Allotment Handbook",
               encryption: str | None = None) -> Path:
    """An EPUB 3 whose spine lists ``chapters`` in *reverse* file order (the spine, not the names, sets the order);
    chapter files are named "chapter N.xhtml" (a space, URL-encoded in the OPF)."""
    items = "".join(f'<item id="c{i}" href="text/chapter%20{i}.xhtml" media-type="application/xhtml+xml"/>'
                    for i in range(1, len(chapters) + 1))
    spine = "".join(f'<itemref idref="c{i}"/>' for i in range(len(chapters), 0, -1))
    opf = ('<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
           f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>{title}</dc:title></metadata>'
           f'<manifest>{items}<item id="css" href="style.css" media-type="text/css"/></manifest>'
           f'<spine>{spine}</spine></package>')
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        z.writestr("META-INF/container.xml", EPUB_CONTAINER)
        z.writestr("OEBPS/content.opf", opf)
        z.writestr("OEBPS/style.css", "p { margin: 0 }")
        # the files hold the chapters in reverse, so the spine's order reads them first to last
        for i, text in enumerate(reversed(chapters), start=1):
            z.writestr(f"OEBPS/text/chapter {i}.xhtml",
                       '<?xml version="1.0" encoding="utf-8"?><!DOCTYPE html>'
                       '<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Chapter</title>'
                       f'<style>p {{ color: red }}</style></head><body><p>{text}</p></body></html>')
        if encryption is not None:
            z.writestr("META-INF/encryption.xml", encryption)
    return path


def write_eml(path: Path, html_only: bool = False) -> Path:
    """A multipart mail: plain and HTML alternatives (or HTML only) and a PDF attachment; an encoded subject."""
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"] = "Ada Lovelace <ada@example.org>"
    msg["To"] = "committee@example.org"
    msg["Date"] = "Mon, 06 May 2024 10:00:00 +0200"
    msg["Subject"] = "Hose moved to shed 2 – Gießkanne"
    if html_only:
        msg.set_content("<html><body><p>The hose now hangs in <b>shed 2</b>.</p>"
                        "<script>track()</script></body></html>", subtype="html")
    else:
        msg.set_content("The hose now hangs in shed 2, next to the wheelbarrow.")
        msg.add_alternative("<p>HTML version of the same note.</p>", subtype="html")
    msg.add_attachment(b"%PDF-1.4 minutes", maintype="application", subtype="pdf", filename="minutes.pdf")
    path.write_bytes(bytes(msg))
    return path
