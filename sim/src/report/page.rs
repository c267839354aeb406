//! The page around the pictures: escaping, the stylesheet, headings and small HTML pieces
//! (swatches, definition lists) that the node view, the charts and the table share. Every text
//! that comes from input (pod, node, group, policy names, reasons) goes through `escape`.

use std::fmt::Write as _;

/// Escapes text for HTML and SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:'DejaVu Sans',Arial,sans-serif;margin:1.5em 2em;color:#222;max-width:1400px}\
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}\
p.summary{font-size:1.05em}.bad{color:#c62828;font-weight:bold}.ok{color:#2e7d32}\
svg{background:#fff;border:1px solid #ddd}svg.sample{border:none;vertical-align:middle}\
.key{display:flex;flex-wrap:wrap;gap:.4em 1.6em;margin:.5em 0;font-size:.9em}\
.key span{white-space:nowrap}\
.pods{column-width:330px;column-gap:1.5em;font-size:.85em}\
.podnode{break-inside:avoid;margin-bottom:.6em}.pod{white-space:nowrap;margin-left:.5em}\
.share{color:#555}\
.sw{display:inline-block;width:.95em;height:.95em;border:1px solid #555;vertical-align:-.12em;margin-right:.35em}\
table{border-collapse:collapse;font-size:.9em;margin:.5em 0}\
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}\
th{background:#f2f2f2}td:first-child{white-space:nowrap}td.num{text-align:right;font-variant-numeric:tabular-nums}\
.note{color:#555;font-size:.85em}";

/// A whole page: title, stylesheet, body.
pub fn page(title: &str, body: &str) -> String {
    let t = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>{STYLE}</style></head><body><h1>{t}</h1>\n{body}</body></html>\n"
    )
}

/// A colour swatch followed by escaped text.
pub fn swatch(colour: &str, text: &str) -> String {
    format!(
        "<span class=\"sw\" style=\"background:{colour}\"></span>{}",
        escape(text)
    )
}

/// A table of plain-text rows under escaped headers; an empty list prints `empty` instead.
pub fn text_table(headers: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"ok\">{}</p>", escape(empty));
    }
    let mut out = String::from("<table><tr>");
    for h in headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{}</td>", escape(cell));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    out
}
