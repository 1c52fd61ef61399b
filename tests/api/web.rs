//! What the tests of pages and forms share: reading what a browser gets (HTML
//! pages, their form fields and lists, escaped text) and what curl gets (one line
//! of text), and the arrangements and checks several of those files use.

use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue, LOCATION, RETRY_AFTER, SET_COOKIE};
use reqwest::{Method, Response, StatusCode};

use crate::helpers::{TestApp, User};

/// A name and a message that would run script if a page inserted them as HTML.
pub const XSS: &str = "<img src=x onerror=alert(1)>";

/// The `Content-Type` of an HTML form post.
pub const FORM: &str = "application/x-www-form-urlencoded";

// ===== Arrangements =====

/// A user who has a session (they created a room of their own).
pub async fn user_with_a_session(app: &TestApp, name: &str) -> User {
    let (user, _) = app.user_in_new_room(name).await;
    assert!(user.cookie.is_some());
    user
}

/// `Origin` of the pages this server serves, as a browser would send it.
pub fn own_origin(app: &TestApp) -> String {
    format!("http://{}", app.addr)
}

/// `(name, connected)` pairs, for comparing with [`User::presence`] and
/// [`present_list`].
pub fn people(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter()
        .map(|&(name, connected)| (name.to_owned(), connected))
        .collect()
}

/// A request as `user` (their cookie, curl's `Accept`) with any method, content
/// type and raw body.
pub async fn send_raw(
    user: &User,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: Option<&[u8]>,
) -> Response {
    let (client, request) = user.get_request(path).build_split();
    let mut request = request.expect("a request");
    *request.method_mut() = method;
    if let Some(content_type) = content_type {
        request.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_str(content_type).expect("a content type"),
        );
    }
    if let Some(body) = body {
        *request.body_mut() = Some(body.to_vec().into());
    }
    client.execute(request).await.expect("request")
}

// ===== Checks =====

/// The user is not a member of the open room `code`: its members list is `403`.
pub async fn assert_not_a_member(user: &User, code: &str) {
    let response = user.get(&format!("/rooms/{code}/members")).await;
    assert_eq!(
        response.status(),
        StatusCode::FORBIDDEN,
        "not a member of {code}"
    );
}

/// A refusal neither sets a session nor sends anyone on to a room.
pub fn assert_changes_nothing(response: &Response) {
    assert!(
        !response.headers().contains_key(SET_COOKIE),
        "a refusal sets no cookie"
    );
    assert!(
        !response.headers().contains_key(LOCATION),
        "a refusal redirects nowhere"
    );
}

/// The home page: a name field, a code field, Start room and Join.
pub fn assert_home_page(page: &str) {
    assert!(input_value(page, "name").is_some(), "a name field");
    assert!(input_value(page, "code").is_some(), "a code field");
    let buttons = button_labels(page);
    assert!(buttons.iter().any(|b| b == "Start room"), "{buttons:?}");
    assert!(buttons.iter().any(|b| b == "Join"), "{buttons:?}");
}

// ===== Reading responses =====

pub fn header(response: &Response, name: HeaderName) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().expect("ascii header").to_owned())
}

/// `Retry-After` of a response, in whole seconds.
pub fn retry_after(response: &Response) -> u64 {
    header(response, RETRY_AFTER)
        .expect("a Retry-After header")
        .parse()
        .expect("Retry-After in whole seconds")
}

/// The body of an HTML page (asserting it is one).
pub async fn html_body(response: Response) -> String {
    let content_type = header(&response, CONTENT_TYPE).unwrap_or_default();
    assert!(
        content_type.starts_with("text/html"),
        "an HTML page, not {content_type:?}"
    );
    response.text().await.expect("body")
}

/// A curl-style refusal: one line of plain text. Returns the line.
pub async fn plain_text_line(response: Response) -> String {
    let content_type = header(&response, CONTENT_TYPE).unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain"),
        "plain text, not {content_type:?}"
    );
    let body = response.text().await.expect("body");
    let line = body.trim_end_matches('\n');
    assert!(!line.trim().is_empty(), "a message");
    assert!(!line.contains('\n'), "one line: {body:?}");
    assert!(!line.starts_with('<'), "not markup: {body:?}");
    line.to_owned()
}

// ===== Reading pages =====

/// The room page's list of people (`<ul id="present">`), in order: each one's
/// name (from its `<bdi>`, unescaped) and whether it is marked connected
/// (`data-connected`). Fails the test if the list is missing or an item lacks
/// either.
pub fn present_list(page: &str) -> Vec<(String, bool)> {
    let start = page
        .find("<ul id=\"present\"")
        .unwrap_or_else(|| panic!("a <ul id=\"present\"> on the page: {page}"));
    let list = &page[start..];
    let list = &list[..list.find("</ul>").expect("the list ends")];
    list.split("<li").skip(1).map(present_item).collect()
}

fn present_item(item: &str) -> (String, bool) {
    let tag = &item[..item.find('>').unwrap_or(item.len())];
    let connected = match attribute(&format!(" {tag}"), "data-connected") {
        Some("true") => true,
        Some("false") => false,
        other => panic!("data-connected is true or false, not {other:?}: <li{item}"),
    };
    let name = between(item, "<bdi>", "</bdi>")
        .unwrap_or_else(|| panic!("the name in a <bdi>: <li{item}"));
    (html_unescape(name), connected)
}

/// The texts of the messages in the room page's history (each `<p class="text"
/// dir="auto">`), unescaped, in order.
pub fn message_texts(page: &str) -> Vec<String> {
    const OPEN: &str = "<p class=\"text\" dir=\"auto\">";
    page.split(OPEN)
        .skip(1)
        .map(|rest| html_unescape(&rest[..rest.find("</p>").expect("the text ends")]))
        .collect()
}

/// The text between the first `open` and the `close` after it.
fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let rest = &text[text.find(open)? + open.len()..];
    Some(&rest[..rest.find(close)?])
}

/// The (unescaped) value of the `<input name="{field}">`, `Some("")` if it has no
/// value, `None` if there is no such input.
pub fn input_value(page: &str, field: &str) -> Option<String> {
    let wanted = format!("name=\"{field}\"");
    page.split("<input")
        .skip(1)
        .map(|rest| &rest[..rest.find('>').unwrap_or(rest.len())])
        .find(|tag| tag.split_whitespace().any(|attribute| attribute == wanted))
        .map(|tag| {
            attribute(tag, "value")
                .map(html_unescape)
                .unwrap_or_default()
        })
}

fn attribute<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let pattern = format!("{name}=\"");
    tag.match_indices(&pattern)
        .find(|(at, _)| tag[..*at].ends_with(char::is_whitespace))
        .map(|(at, _)| {
            let value = &tag[at + pattern.len()..];
            &value[..value.find('"').unwrap_or(value.len())]
        })
}

fn button_labels(page: &str) -> Vec<String> {
    page.split("<button")
        .skip(1)
        .filter_map(|rest| {
            let start = rest.find('>')? + 1;
            let end = rest.find("</button>")?;
            Some(html_unescape(rest.get(start..end)?.trim()))
        })
        .collect()
}

/// Decodes the character references a page may use.
pub fn html_unescape(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let decoded = rest
            .find(';')
            .filter(|&end| end <= 10)
            .and_then(|end| decode_entity(&rest[1..end]).map(|c| (c, end)));
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn decode_entity(entity: &str) -> Option<char> {
    match entity {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => {
            let number = entity.strip_prefix('#')?;
            let code = match number.strip_prefix(['x', 'X']) {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => number.parse().ok()?,
            };
            char::from_u32(code)
        }
    }
}
