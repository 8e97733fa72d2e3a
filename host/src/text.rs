//! Text that comes from outside — a plugin's name, the errors it returns and what it
//! prints, values and names read from input files, SQL text — is data, not terminal
//! output: before it reaches a message, control characters are escaped and its length is
//! capped, so nobody can forge a line of their own, send a terminal escape sequence, or
//! flood the user with megabytes of text.

/// Longest name of a plugin shown in a message, in characters.
pub(crate) const NAME_CHARS: usize = 80;

/// Longest error text of a plugin shown in a message, in characters.
pub(crate) const ERROR_CHARS: usize = 2048;

/// Longest line the command line prints for an error or a notice, in characters.
pub(crate) const LINE_CHARS: usize = 16 * 1024;

/// The message of a caught panic (escaped: it may quote input), or "no message".
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into());
    shown(&what, ERROR_CHARS)
}

/// `text` with every control character (newlines, tabs, ESC, DEL, C1 controls) and the
/// Unicode bidirectional overrides written as escapes (`\n`, `\t`, `\u{1b}`), cut to at
/// most `max` characters of the original with a note of how much was left out.
pub(crate) fn shown(text: &str, max: usize) -> String {
    let total = text.chars().count();
    let mut out = String::with_capacity(text.len().min(max * 2) + 32);
    for c in text.chars().take(max) {
        escape_into(&mut out, c);
    }
    if total > max {
        out.push_str(&format!("… ({} more characters)", total - max));
    }
    out
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_control() || is_bidi_control(c) => {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
        c => out.push(c),
    }
}

/// Characters that reorder how a terminal shows the text around them.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            shown("a\nerror: forged\x1b[31m\u{7f}\u{202e}", 100),
            "a\\nerror: forged\\u{1b}[31m\\u{7f}\\u{202e}"
        );
        assert_eq!(shown("plain text, é", 100), "plain text, é");
    }

    #[test]
    fn length_is_capped_with_a_note() {
        let long = "x".repeat(5000);
        let out = shown(&long, 10);
        assert_eq!(out, "xxxxxxxxxx… (4990 more characters)");
    }
}
