//! Request-body arguments: `application/x-www-form-urlencoded` and
//! `multipart/form-data` (RFC 7578) parsed into [`Arguments`] and [`Files`].
//! Mirrors `parse_body_arguments`, `parse_multipart_form_data` and
//! `HTTPFile` in Tornado's `httputil.py`, including the 6.5.5 limits
//! (at most 100 parts, part headers at most 10 KiB, no bare CR in them).
//!
//! The whole body is already in memory (the HTTP layer bounded its size);
//! parsing allocates at most about one more copy of it, and either every
//! field is added or, on error, none is.

use super::arguments::{Arguments, Files};
use super::error::HTTPInputError;
use super::headers::{is_field_value, is_token, HTTPHeaders};
use super::params::parse_header;
use super::url::parse_query;

/// One uploaded file of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HTTPFile {
    /// The `filename` parameter of the part's `Content-Disposition`, as sent
    /// (never trust it as a path).
    pub filename: String,
    /// The part's `Content-Type`, or `application/unknown` when absent.
    pub content_type: String,
    /// The file's bytes.
    pub body: Vec<u8>,
}

/// Limits applied to `multipart/form-data` bodies (Tornado 6.5.5's
/// `ParseMultipartConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartConfig {
    /// Most parts (fields plus files) accepted in one body. Default 100.
    /// (Tornado also counts the empty piece before the first delimiter,
    /// so it accepts one field fewer for the same setting.)
    pub max_parts: usize,
    /// Most bytes in one part's header block. Default 10 KiB.
    pub max_part_header_size: usize,
}

impl Default for MultipartConfig {
    fn default() -> Self {
        Self {
            max_parts: 100,
            max_part_header_size: 10 * 1024,
        }
    }
}

/// Most fields an `application/x-www-form-urlencoded` body may hold
/// (Django's `DATA_UPLOAD_MAX_NUMBER_FIELDS`; Tornado sets none). Each field
/// becomes two owned strings and an entry, about 80 bytes even when empty:
/// without a cap, a 10 MB body of `a&a&…` grew the server by over 600 MB
/// before the XSRF check could refuse it.
pub const MAX_FORM_FIELDS: usize = 1000;

/// Longest boundary RFC 2046 §5.1.1 allows:
/// `boundary := 0*69<bchars> bcharsnospace`. Bounding it also bounds the
/// cost of every delimiter search below to 70-ish bytes per body byte.
pub const MAX_BOUNDARY_LEN: usize = 70;

/// Parses a request body according to its `Content-Type`, appending fields
/// to `arguments` and uploads to `files`.
///
/// The caller refuses a body with a `Content-Encoding` first (Tornado does
/// that check here, but only the caller has the headers).
///
/// `application/x-www-form-urlencoded` bodies are split with
/// [`parse_query`], and refused with more than [`MAX_FORM_FIELDS`] fields;
/// `multipart/form-data` ones need a `boundary` parameter
/// (quoted or not) and are parsed with [`parse_multipart_form_data`] and
/// the default [`MultipartConfig`]. Any other content type is left alone.
/// Media types compare ASCII case-insensitively.
///
/// On `Err`, neither `arguments` nor `files` has been changed.
pub fn parse_body_arguments(
    content_type: &str,
    body: &[u8],
    arguments: &mut Arguments,
    files: &mut Files,
) -> Result<(), HTTPInputError> {
    // The media type is what precedes the first `;`. (`parse_header` splits
    // only outside quotes, but neither type matched here holds a quote, so
    // a value with one before its first `;` matches neither way.) A form
    // post needs none of the parameters: they are parsed for multipart only.
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    if media_type.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        // Counted before anything is allocated. The separators bound the
        // fields from above in one cheap pass (every chat re-poll is a
        // form); only a body with that many is counted exactly, skipping
        // empty segments as `parse_query` does.
        let separators = body.iter().filter(|&&b| b == b'&').count();
        if separators >= MAX_FORM_FIELDS
            && body
                .split(|&b| b == b'&')
                .filter(|field| !field.is_empty())
                .count()
                > MAX_FORM_FIELDS
        {
            return Err(HTTPInputError::new(format!(
                "more than {MAX_FORM_FIELDS} form fields"
            )));
        }
        arguments.extend(parse_query(body));
        Ok(())
    } else if media_type.eq_ignore_ascii_case("multipart/form-data") {
        match parse_header(content_type).param("boundary") {
            Some(boundary) if !boundary.is_empty() => parse_multipart_form_data(
                boundary,
                body,
                arguments,
                files,
                &MultipartConfig::default(),
            ),
            _ => Err(HTTPInputError::new(
                "Invalid multipart/form-data: boundary not found",
            )),
        }
    } else {
        Ok(())
    }
}

/// Parses a `multipart/form-data` body (RFC 7578) delimited by `boundary`.
///
/// ```text
/// multipart-body = [preamble CRLF] dash-boundary CRLF body-part
///                  *( CRLF dash-boundary CRLF body-part )
///                  CRLF dash-boundary "--" [CRLF epilogue]
/// dash-boundary  = "--" boundary
/// body-part      = *( header-field CRLF ) CRLF [ octets ]
/// ```
///
/// Like Tornado, the body is cut at the *last* `--boundary--`, and the rest
/// is split on `--boundary` CRLF; each part must end in CRLF, start with
/// header fields ending in an empty line, and carry
/// `Content-Disposition: form-data; name="..."`. A part with a non-empty
/// `filename` becomes an [`HTTPFile`]; the others become text arguments
/// (decoded as UTF-8, lossily). A boundary wrapped in double quotes is
/// unquoted. Anything before the first delimiter (the preamble) is ignored.
///
/// Refused with [`HTTPInputError`]: a missing final boundary, more than
/// `config.max_parts` parts, a part header block over
/// `config.max_part_header_size` bytes, a CR or LF inside a part header
/// line, folded or malformed part header lines, a part that is not
/// `form-data` or has no `name`. On `Err`, nothing has been added.
pub fn parse_multipart_form_data(
    boundary: &str,
    body: &[u8],
    arguments: &mut Arguments,
    files: &mut Files,
    config: &MultipartConfig,
) -> Result<(), HTTPInputError> {
    let boundary = boundary
        .strip_prefix('"')
        .and_then(|b| b.strip_suffix('"'))
        .unwrap_or(boundary);
    if boundary.is_empty() || boundary.len() > MAX_BOUNDARY_LEN {
        return Err(invalid("boundary must be 1 to 70 characters"));
    }
    let delimiter = [b"--", boundary.as_bytes()].concat();
    let final_delimiter = [&delimiter[..], b"--"].concat();
    let Some(end) = rfind(body, &final_delimiter) else {
        return Err(invalid("no final boundary found"));
    };
    let part_separator = [&delimiter[..], b"\r\n"].concat();

    let mut new_arguments = Vec::new();
    let mut new_files = Vec::new();
    let mut count = 0;
    // The first piece is the preamble (usually empty), which RFC 2046 says
    // to ignore.
    for part in split(&body[..end], &part_separator).skip(1) {
        if part.is_empty() {
            continue;
        }
        count += 1;
        if count > config.max_parts {
            return Err(invalid("too many parts"));
        }
        match parse_part(part, config)? {
            Part::Argument(name, value) => new_arguments.push((name, value)),
            Part::File(name, file) => new_files.push((name, file)),
        }
    }
    arguments.extend(new_arguments);
    files.extend(new_files);
    Ok(())
}

enum Part {
    Argument(String, String),
    File(String, HTTPFile),
}

/// One `body-part` (without the delimiter before it; with the CRLF that
/// belongs to the delimiter after it).
fn parse_part(part: &[u8], config: &MultipartConfig) -> Result<Part, HTTPInputError> {
    // Search the header terminator only where it may legally be.
    let window = &part[..part.len().min(config.max_part_header_size + 4)];
    let Some(eoh) = find(window, b"\r\n\r\n") else {
        return Err(if part.len() > config.max_part_header_size {
            invalid("part header too large")
        } else {
            invalid("part is missing headers")
        });
    };
    if eoh > config.max_part_header_size {
        return Err(invalid("part header too large"));
    }
    let headers = parse_part_headers(&part[..eoh])?;

    let disposition = parse_header(headers.get("Content-Disposition").unwrap_or(""));
    if !disposition.value.eq_ignore_ascii_case("form-data") {
        return Err(invalid("part is not form-data"));
    }
    // The part's content runs from after the empty line to before the CRLF
    // that precedes the next delimiter.
    let value_start = eoh + 4;
    let Some(value_end) = part.len().checked_sub(2) else {
        return Err(invalid("part does not end with CRLF"));
    };
    if !part.ends_with(b"\r\n") || value_end < value_start {
        return Err(invalid("part does not end with CRLF"));
    }
    let value = &part[value_start..value_end];

    let name = match disposition.param("name") {
        Some(name) if !name.is_empty() => name.to_string(),
        _ => return Err(invalid("part is missing a name")),
    };
    match disposition.param("filename") {
        Some(filename) if !filename.is_empty() => Ok(Part::File(
            name,
            HTTPFile {
                filename: filename.to_string(),
                content_type: headers
                    .get("Content-Type")
                    .unwrap_or("application/unknown")
                    .to_string(),
                body: value.to_vec(),
            },
        )),
        _ => Ok(Part::Argument(
            name,
            String::from_utf8_lossy(value).into_owned(),
        )),
    }
}

/// Part header lines, CRLF-separated (RFC 9110 §5):
///
/// ```text
/// field-line = field-name ":" OWS field-value OWS
/// field-name = token
/// ```
///
/// A CR or LF anywhere but in the CRLF separators is refused (Tornado
/// 6.5.5), as is obsolete line folding and any other control character.
fn parse_part_headers(block: &[u8]) -> Result<HTTPHeaders, HTTPInputError> {
    let text = std::str::from_utf8(block).map_err(|_| invalid("part headers are not UTF-8"))?;
    let mut headers = HTTPHeaders::new();
    for line in text.split("\r\n") {
        if line.contains('\r') {
            return Err(invalid("CR in part headers"));
        }
        if line.starts_with([' ', '\t']) {
            return Err(invalid("folded part header line"));
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(invalid("malformed part header line"));
        };
        let value = value.trim_matches([' ', '\t']);
        if !is_token(name) || !is_field_value(value.as_bytes()) {
            return Err(invalid("malformed part header line"));
        }
        headers.add(name, value);
    }
    Ok(headers)
}

fn invalid(what: &str) -> HTTPInputError {
    HTTPInputError::new(format!("Invalid multipart/form-data: {what}"))
}

/// First index of `needle` in `haystack`, in O(haystack + needle) time
/// whatever the bytes (Knuth–Morris–Pratt), so a body crafted to look
/// almost like the delimiter everywhere costs no more than any other.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    kmp_matches(haystack, needle).next()
}

/// Last index of `needle` in `haystack` (same linear bound as [`find`]).
fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    kmp_matches(haystack, needle).last()
}

/// Start indexes of every (possibly overlapping) match of a non-empty
/// `needle`, left to right.
fn kmp_matches<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    // fallback[i]: length of the longest proper prefix of needle[..=i]
    // that is also a suffix of it.
    let mut fallback = vec![0; needle.len()];
    let mut k = 0;
    for i in 1..needle.len() {
        while k > 0 && needle[i] != needle[k] {
            k = fallback[k - 1];
        }
        if needle[i] == needle[k] {
            k += 1;
        }
        fallback[i] = k;
    }
    let mut matched = 0;
    haystack.iter().enumerate().filter_map(move |(i, &b)| {
        if needle.is_empty() {
            return None;
        }
        while matched > 0 && needle[matched] != b {
            matched = fallback[matched - 1];
        }
        if needle[matched] == b {
            matched += 1;
        }
        if matched == needle.len() {
            matched = fallback[matched - 1];
            return Some(i + 1 - needle.len());
        }
        None
    })
}

/// Lazily splits `haystack` on every occurrence of `separator`.
fn split<'a>(haystack: &'a [u8], separator: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut rest = Some(haystack);
    std::iter::from_fn(move || {
        let current = rest?;
        match find(current, separator) {
            Some(i) => {
                rest = Some(&current[i + separator.len()..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_body_may_hold_max_form_fields_and_no_more() {
        let form = "application/x-www-form-urlencoded";
        let body = |n: usize| "a=1&".repeat(n).into_bytes();
        let (mut args, mut files) = (Arguments::new(), Files::new());
        assert!(parse_body_arguments(form, &body(MAX_FORM_FIELDS), &mut args, &mut files).is_ok());
        assert_eq!(args.get_all("a").count(), MAX_FORM_FIELDS);
        // Empty segments are not fields.
        let mut sparse = body(MAX_FORM_FIELDS);
        sparse.extend_from_slice(&b"&".repeat(10_000));
        let (mut args, mut files) = (Arguments::new(), Files::new());
        assert!(parse_body_arguments(form, &sparse, &mut args, &mut files).is_ok());
        let (mut args, mut files) = (Arguments::new(), Files::new());
        let err = parse_body_arguments(form, &body(MAX_FORM_FIELDS + 1), &mut args, &mut files)
            .expect_err("one field too many");
        assert!(err.message().contains("form fields"), "{}", err.message());
        assert!(args.is_empty(), "nothing added on error");
    }

    fn crlf(s: &str) -> Vec<u8> {
        s.replace('\n', "\r\n").into_bytes()
    }

    fn parse(boundary: &str, body: &[u8]) -> Result<(Arguments, Files), HTTPInputError> {
        let (mut args, mut files) = (Arguments::new(), Files::new());
        parse_multipart_form_data(
            boundary,
            body,
            &mut args,
            &mut files,
            &MultipartConfig::default(),
        )?;
        Ok((args, files))
    }

    fn arg<'a>(args: &'a Arguments, name: &str) -> Option<&'a str> {
        args.get_first(name).map(String::as_str)
    }

    #[test]
    fn two_fields_and_a_file() {
        let body = crlf(concat!(
            "--1234\n",
            "Content-Disposition: form-data; name=\"title\"\n",
            "\n",
            "Hello\n",
            "--1234\n",
            "Content-Disposition: form-data; name=\"tags\"\n",
            "\n",
            "a\nb\n",
            "--1234\n",
            "Content-Disposition: form-data; name=\"upload\"; filename=\"ab.txt\"\n",
            "Content-Type: text/plain\n",
            "\n",
            "file\ncontent\n",
            "--1234--\n",
        ));
        let (mut args, mut files) = (Arguments::new(), Files::new());
        parse_body_arguments(
            "multipart/form-data; boundary=1234",
            &body,
            &mut args,
            &mut files,
        )
        .unwrap();
        assert_eq!(arg(&args, "title"), Some("Hello"));
        assert_eq!(arg(&args, "tags"), Some("a\r\nb"));
        assert_eq!(args.len(), 2);
        let file = files.get_first("upload").unwrap();
        assert_eq!(file.filename, "ab.txt");
        assert_eq!(file.content_type, "text/plain");
        assert_eq!(file.body, b"file\r\ncontent");
    }

    #[test]
    fn quoted_boundary_and_defaults() {
        let body = crlf(concat!(
            "--a b=c\n",
            "Content-Disposition: form-data; name=\"f\"; filename=\"x.bin\"\n",
            "\n",
            "\n",
            "--a b=c--",
        ));
        let (mut args, mut files) = (Arguments::new(), Files::new());
        parse_body_arguments(
            "Multipart/Form-Data; boundary=\"a b=c\"",
            &body,
            &mut args,
            &mut files,
        )
        .unwrap();
        let file = files.get_first("f").unwrap();
        assert_eq!(file.content_type, "application/unknown");
        assert!(file.body.is_empty());
        // Calling the multipart parser directly with the quotes also works.
        assert!(parse("\"a b=c\"", &body).is_ok());
    }

    #[test]
    fn empty_filename_is_an_argument_and_preamble_is_ignored() {
        let body = crlf(concat!(
            "preamble text\n",
            "--b\n",
            "content-disposition: form-data; name=\"f\"; filename=\"\"\n",
            "\n",
            "v\n",
            "--b--\nepilogue",
        ));
        let (args, files) = parse("b", &body).unwrap();
        assert_eq!(arg(&args, "f"), Some("v"));
        assert!(files.is_empty());
    }

    #[test]
    fn urlencoded_bodies() {
        let (mut args, mut files) = (Arguments::new(), Files::new());
        parse_body_arguments(
            "application/x-www-form-urlencoded; charset=UTF-8",
            b"body=hi+there&room=r%C3%A9&body=2",
            &mut args,
            &mut files,
        )
        .unwrap();
        assert_eq!(arg(&args, "room"), Some("r\u{e9}"));
        assert_eq!(args.get_all("body").count(), 2);
        parse_body_arguments("application/json", b"{}", &mut args, &mut files).unwrap();
        assert_eq!(args.len(), 3);
    }

    #[test]
    fn the_media_type_is_matched_before_its_parameters() {
        let parsed_fields = |content_type: &str| {
            let (mut args, mut files) = (Arguments::new(), Files::new());
            parse_body_arguments(content_type, b"a=1", &mut args, &mut files).map(|()| args.len())
        };
        for form in [
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-URLEncoded",
            "  application/x-www-form-urlencoded  ;charset=UTF-8",
            "application/x-www-form-urlencoded;",
        ] {
            assert_eq!(parsed_fields(form), Ok(1), "{form:?}");
        }
        for other in [
            "application/x-www-form-urlencodedx",
            "\"application/x-www-form-urlencoded\"",
            "application/x-www-form-urlencoded\"; x=\"",
            "text/plain; x=application/x-www-form-urlencoded",
            "",
        ] {
            assert_eq!(parsed_fields(other), Ok(0), "{other:?}");
        }
        // Multipart still reads its boundary from the parameters.
        let (mut args, mut files) = (Arguments::new(), Files::new());
        let err = parse_body_arguments("Multipart/Form-Data", b"", &mut args, &mut files);
        assert!(err.is_err(), "no boundary");
        let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\nv\r\n--b--";
        parse_body_arguments(
            "multipart/form-data; boundary=\"b\"",
            body,
            &mut args,
            &mut files,
        )
        .expect("quoted boundary");
        assert_eq!(arg(&args, "f"), Some("v"));
    }

    #[test]
    fn too_many_parts() {
        let field = "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n";
        let ok = format!("{}--b--", field.repeat(100));
        assert_eq!(parse("b", ok.as_bytes()).unwrap().0.len(), 100);
        let too_many = format!("{}--b--", field.repeat(101));
        let err = parse("b", too_many.as_bytes()).unwrap_err();
        assert!(err.message().contains("too many parts"), "{err}");
    }

    #[test]
    fn part_header_size_limit() {
        let big = "x".repeat(10 * 1024);
        let body = format!(
            "--b\r\nContent-Disposition: form-data; name=\"x\"\r\nX-Pad: {big}\r\n\r\n1\r\n--b--"
        );
        let err = parse("b", body.as_bytes()).unwrap_err();
        assert!(err.message().contains("header too large"), "{err}");
        let unterminated = format!("--b\r\nX-Pad: {big}{big}\r\n--b--");
        let err = parse("b", unterminated.as_bytes()).unwrap_err();
        assert!(err.message().contains("header too large"), "{err}");
    }

    #[test]
    fn cr_and_bad_lines_in_part_headers() {
        let cases = [
            "Content-Disposition: form-data; name=\"x\"\rX-Evil: 1",
            "Content-Disposition: form-data;\n name=\"x\"",
            "Content-Disposition: form-data; name=\"x\"\r\n folded",
            "Content-Disposition form-data",
            "Bad Name: x",
            "Content-Disposition: form-data; name=\"x\0\"",
        ];
        for headers in cases {
            let body = format!("--b\r\n{headers}\r\n\r\nv\r\n--b--");
            assert!(parse("b", body.as_bytes()).is_err(), "{headers:?}");
        }
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let bad: &[&[u8]] = &[
            b"",
            b"--b",
            b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nno-crlf--b--",
            b"--b\r\nContent-Disposition: attachment; name=\"x\"\r\n\r\nv\r\n--b--",
            b"--b\r\nContent-Disposition: form-data\r\n\r\nv\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"\"\r\n\r\nv\r\n--b--",
            b"--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\nv\r\n",
            b"--b\r\nContent-Disposition: form-data; name=\"\xff\"\r\n\r\nv\r\n--b--",
        ];
        for body in bad {
            assert!(
                parse("b", body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        // Truncations of a valid body never panic.
        let valid = crlf("--b\nContent-Disposition: form-data; name=\"x\"\n\nv\n--b--\n");
        for n in 0..valid.len() {
            let _ = parse("b", &valid[..n]);
        }
        assert!(parse("b", &valid).is_ok());
    }

    #[test]
    fn search_helpers() {
        assert_eq!(find(b"abcabc", b"cab"), Some(2));
        assert_eq!(find(b"aaab", b"aab"), Some(1));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"ab", b""), None);
        assert_eq!(rfind(b"xaaaax", b"aa"), Some(3));
        assert_eq!(rfind(b"abab", b"ab"), Some(2));
        let parts: Vec<&[u8]> = split(b"--b1--b--b", b"--b").collect();
        assert_eq!(parts, [&b""[..], b"1", b"", b""]);
    }

    #[test]
    fn near_miss_delimiters_stay_linear() {
        // Every position almost matches a 70-dash boundary: a naive search
        // would do ~70 comparisons per byte; KMP does about one.
        let boundary = "-".repeat(69) + "x";
        let body = "-".repeat(1 << 20);
        assert!(parse(&boundary, body.as_bytes()).is_err());
    }

    #[test]
    fn no_parts_at_all_is_fine() {
        let (args, files) = parse("b", b"--b\r\n--b--").unwrap();
        assert!(args.is_empty() && files.is_empty());
    }

    #[test]
    fn boundary_problems() {
        let (mut args, mut files) = (Arguments::new(), Files::new());
        for ct in [
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
        ] {
            let err = parse_body_arguments(ct, b"--b--", &mut args, &mut files).unwrap_err();
            assert!(err.to_string().starts_with("Invalid multipart/form-data"));
        }
        let long = "x".repeat(71);
        assert!(parse(&long, format!("--{long}--").as_bytes()).is_err());
        let max = "x".repeat(70);
        assert!(parse(&max, format!("--{max}--").as_bytes()).is_ok());
    }

    #[test]
    fn error_leaves_outputs_untouched() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"ok\"\r\n\r\n1\r\n--b\r\nbroken\r\n\r\n2\r\n--b--";
        let (mut args, mut files) = (Arguments::new(), Files::new());
        assert!(parse_multipart_form_data(
            "b",
            body,
            &mut args,
            &mut files,
            &MultipartConfig::default()
        )
        .is_err());
        assert!(args.is_empty() && files.is_empty());
    }
}
