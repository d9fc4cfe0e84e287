//! Hand-written HTML: one escaping function every piece of data goes through, the page layout, and small
//! formatting helpers. No template engine: pages are `String`s built with `write!`, and the rule is simple —
//! anything that did not come from a literal in this crate is passed through [`esc`] (or [`attr`]) first.

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::fmt::Write;

/// Escapes text for an HTML text node or a double-quoted attribute value.
pub(crate) fn esc(text: &str) -> String {
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

/// The same as [`esc`], named for attribute values so call sites read as what they are.
pub(crate) fn attr(text: &str) -> String {
    esc(text)
}

/// Percent-encodes a query-string value (everything but unreserved characters).
pub(crate) fn url_enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// A JSON value, pretty-printed and escaped, in a `<pre>`.
pub(crate) fn json_block(value: &Value) -> String {
    let text = serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    format!("<pre class=\"json\">{}</pre>", esc(&text))
}

/// A timestamp as UTC `YYYY-MM-DD HH:MM:SS`, in a `<time>` element carrying the exact RFC 3339 value.
pub(crate) fn time(at: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time>",
        at.to_rfc3339(),
        at.format("%Y-%m-%d %H:%M:%S")
    )
}

/// How long ago, roughly (`3s ago`, `5m ago`, `2h ago`, `4d ago`); `in 5m` for the future.
pub(crate) fn ago(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    let (n, future) = if secs < 0 {
        (-secs, true)
    } else {
        (secs, false)
    };
    let text = if n < 60 {
        format!("{n}s")
    } else if n < 3600 {
        format!("{}m", n / 60)
    } else if n < 86_400 {
        format!("{}h", n / 3600)
    } else {
        format!("{}d", n / 86_400)
    };
    if future {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A status badge; the CSS class is chosen from a fixed list, never from the text.
pub(crate) fn badge(status: &str) -> String {
    let class = match status {
        "COMPLETED" | "ACTIVE" | "SUCCEEDED" => "ok",
        "FAILED" | "TIMED_OUT" | "INACTIVE" => "bad",
        "CANCELLED" | "SKIPPED" | "PAUSED" => "muted",
        "RUNNING" | "ASSIGNED" | "STARTED" => "run",
        _ => "wait",
    };
    format!("<span class=\"badge {class}\">{}</span>", esc(status))
}

/// The pages of the navigation bar: (path, label).
pub(crate) const NAV: [(&str, &str); 9] = [
    ("/runs", "Runs"),
    ("/workers", "Workers"),
    ("/workflows", "Workflows"),
    ("/crons", "Crons & schedules"),
    ("/events", "Events"),
    ("/rate-limits", "Rate limits"),
    ("/concurrency", "Concurrency"),
    ("/queues", "Queues"),
    ("/alerts", "Alerts"),
];

/// What the layout needs to know about the signed-in session.
pub(crate) struct Chrome<'a> {
    /// The tenant shown in the header.
    pub tenant: uuid::Uuid,
    /// The CSRF token for the sign-out form.
    pub csrf: &'a str,
    /// The active navigation entry.
    pub active: &'a str,
    /// The change generation the page is rendered at (`/live?since=`).
    pub generation: u64,
}

/// A whole page: head, navigation, `body`. `body` must already be escaped HTML.
pub(crate) fn page(title: &str, chrome: Option<&Chrome<'_>>, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · pg_hatchet</title>\
         <link rel=\"stylesheet\" href=\"/static/dashboard.css\">\
         <script src=\"/static/dashboard.js\" defer></script></head><body data-generation=\"{}\">",
        esc(title),
        chrome.map_or(0, |c| c.generation)
    );
    out.push_str("<header><a class=\"brand\" href=\"/runs\">pg_hatchet</a>");
    if let Some(c) = chrome {
        out.push_str("<nav>");
        for (path, label) in NAV {
            let class = if path == c.active {
                " class=\"active\""
            } else {
                ""
            };
            let _ = write!(out, "<a href=\"{path}\"{class}>{label}</a>");
        }
        let _ = write!(
            out,
            "</nav><span class=\"tenant\" title=\"tenant\">{}</span>\
             <span id=\"live-status\" class=\"live\"></span>\
             <form method=\"post\" action=\"/logout\" class=\"inline\">{}\
             <button type=\"submit\">Sign out</button></form>",
            c.tenant,
            csrf_field(c.csrf)
        );
    }
    let _ = write!(
        out,
        "</header><main><h1>{}</h1>{body}</main></body></html>",
        esc(title)
    );
    out
}

/// The hidden CSRF input every POST form carries.
pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        attr(csrf)
    )
}

/// A one-button POST form (an action), with its CSRF token.
pub(crate) fn action_button(
    action: &str,
    label: &str,
    csrf: &str,
    hidden: &[(&str, &str)],
) -> String {
    let mut out = format!(
        "<form method=\"post\" action=\"{}\" class=\"inline\">{}",
        attr(action),
        csrf_field(csrf)
    );
    for (name, value) in hidden {
        let _ = write!(
            out,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            attr(name),
            attr(value)
        );
    }
    let _ = write!(
        out,
        "<button type=\"submit\">{}</button></form>",
        esc(label)
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert(\"x\")</script> & 'y'"),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(url_enc("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }

    #[test]
    fn ages_read_naturally() {
        let now = Utc::now();
        assert_eq!(ago(now - chrono::Duration::seconds(5), now), "5s ago");
        assert_eq!(ago(now - chrono::Duration::seconds(7200), now), "2h ago");
        assert_eq!(ago(now + chrono::Duration::seconds(300), now), "in 5m");
    }

    #[test]
    fn badges_take_their_class_from_a_fixed_list() {
        assert_eq!(
            badge("COMPLETED"),
            "<span class=\"badge ok\">COMPLETED</span>"
        );
        assert_eq!(badge("<b>"), "<span class=\"badge wait\">&lt;b&gt;</span>");
    }
}
