//! What a shared file may be called and claim to be.
//!
//! A file's name and content type come from whoever uploads it, and an
//! agent's desktop shows the one and may open the file by the other. So the
//! name is cleaned of anything that could disguise it (control characters,
//! bidirectional overrides that turn `gpj.exe` around, path parts) and the
//! content type is kept only from a list of types that are safe to show;
//! anything else is served as a plain download.

/// The longest file name kept, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;

/// Content types kept as given; every other becomes
/// [`DOWNLOAD_CONTENT_TYPE`].
pub const SAFE_CONTENT_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "application/pdf",
    "text/plain",
    "text/csv",
    "audio/mpeg",
    "audio/ogg",
    "video/mp4",
    "application/zip",
    "application/msword",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
];

/// The content type of anything not on the safe list.
pub const DOWNLOAD_CONTENT_TYPE: &str = "application/octet-stream";

/// Characters that reorder the text around them when shown.
pub(crate) fn is_bidi_control(c: char) -> bool {
    matches!(
        c,
        '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

/// The name to keep for an uploaded file: its last path part, without
/// control or bidirectional characters, trimmed, at most
/// [`MAX_FILE_NAME_BYTES`]; `None` if nothing is left.
pub fn clean_file_name(name: &str) -> Option<String> {
    let last = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let mut clean: String = last
        .chars()
        .filter(|&c| !c.is_control() && !is_bidi_control(c))
        .collect();
    let trimmed = clean.trim().trim_start_matches('.').trim();
    if trimmed.is_empty() {
        return None;
    }
    clean = trimmed.to_owned();
    if clean.len() > MAX_FILE_NAME_BYTES {
        let mut end = MAX_FILE_NAME_BYTES;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
    }
    Some(clean)
}

/// The content type to keep: the given one if it is on the safe list
/// (case and parameters aside), else [`DOWNLOAD_CONTENT_TYPE`].
pub fn safe_content_type(given: &str) -> &'static str {
    let essence = given.split(';').next().unwrap_or("").trim();
    SAFE_CONTENT_TYPES
        .iter()
        .find(|safe| safe.eq_ignore_ascii_case(essence))
        .copied()
        .unwrap_or(DOWNLOAD_CONTENT_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_disguises_and_paths() {
        assert_eq!(clean_file_name("photo.png").as_deref(), Some("photo.png"));
        assert_eq!(
            clean_file_name("invoice\u{202E}fdp.exe").as_deref(),
            Some("invoicefdp.exe")
        );
        assert_eq!(
            clean_file_name("a\u{0}b\tc.txt").as_deref(),
            Some("abc.txt")
        );
        assert_eq!(
            clean_file_name("../../etc/passwd").as_deref(),
            Some("passwd")
        );
        assert_eq!(
            clean_file_name("C:\\Users\\x\\cv.pdf").as_deref(),
            Some("cv.pdf")
        );
        assert_eq!(clean_file_name(".bashrc").as_deref(), Some("bashrc"));
        assert_eq!(clean_file_name("   "), None);
        assert_eq!(clean_file_name("\u{202E}"), None);
        let long = "é".repeat(200);
        let kept = clean_file_name(&long).unwrap();
        assert!(kept.len() <= MAX_FILE_NAME_BYTES && kept.chars().all(|c| c == 'é'));
    }

    #[test]
    fn only_safe_content_types_are_kept() {
        assert_eq!(safe_content_type("image/png"), "image/png");
        assert_eq!(safe_content_type("Text/Plain; charset=utf-8"), "text/plain");
        assert_eq!(safe_content_type("text/html"), DOWNLOAD_CONTENT_TYPE);
        assert_eq!(safe_content_type("image/svg+xml"), DOWNLOAD_CONTENT_TYPE);
        assert_eq!(safe_content_type(""), DOWNLOAD_CONTENT_TYPE);
    }
}
