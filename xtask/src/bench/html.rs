//! `report.html`: `report.md` rendered by pulldown-cmark, with each chart's
//! SVG inlined so that the page is one file that opens from disk.

use std::collections::BTreeMap;

use pulldown_cmark::{Event, Options, Parser, Tag, html};

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;\
padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border:1px solid #ccc;padding:.25em .6em}td{text-align:right}td:first-child{text-align:left}\
th{background:#f3f4f6}code{background:#f3f4f6;padding:0 .2em}svg{max-width:100%;height:auto}";

/// The page for `markdown`, with `charts` (file name -> SVG) inlined where
/// the markdown shows `charts/<file>`.
pub(crate) fn page(markdown: &str, charts: &BTreeMap<String, String>) -> String {
    let mut options = Options::empty();
    options.insert(Options::ENABLE_TABLES);
    let mut in_image: Option<String> = None;
    let events = Parser::new_ext(markdown, options).filter_map(|event| match event {
        Event::Start(Tag::Image { dest_url, .. }) => {
            let file = dest_url
                .strip_prefix("charts/")
                .unwrap_or(&dest_url)
                .to_string();
            in_image = Some(file);
            None
        }
        Event::End(pulldown_cmark::TagEnd::Image) => {
            let file = in_image.take()?;
            Some(Event::Html(
                charts
                    .get(&file)
                    .cloned()
                    .unwrap_or_else(|| format!("<p>(chart {file} missing)</p>"))
                    .into(),
            ))
        }
        // The image's alt text.
        _ if in_image.is_some() => None,
        other => Some(other),
    });
    let mut body = String::new();
    html::push_html(&mut body, events);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>prodkit benchmark report</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n"
    )
}
