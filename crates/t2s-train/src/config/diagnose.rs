//! Configuration errors that say where and what: an unknown key gets the nearest valid one
//! ("did you mean") and its place in the file (line, section, the text as written) or the
//! `--set` it came from.

/// `message` (a serde error about the configuration) with a suggestion and a location added when
/// it is about an unknown key. `text` is the file as written; `from_set` the override that
/// introduced the error, if it came from one.
pub fn explain(message: &str, text: &str, from_set: Option<&str>) -> String {
    let Some((key, valid)) = unknown_field(message) else {
        return match from_set {
            Some(o) => format!("from --set {o}: {}", first_paragraph(message)),
            None => message.to_string(),
        };
    };
    let hint = nearest(&key, &valid).map(|k| format!("; did you mean `{k}`?")).unwrap_or_else(|| ".".into());
    let place = match from_set {
        Some(o) => format!(" (from --set {o})"),
        None => locate(&key, text).map(|(line, section, written)| format!(" in {section} at line {line}: `{written}`")).unwrap_or_default(),
    };
    format!("unknown key `{key}`{place}{hint} Valid keys there: {}", valid.join(", "))
}

/// The key and the valid keys of serde's "unknown field `k`, expected one of `a`, `b`" (or
/// "expected `a`").
fn unknown_field(message: &str) -> Option<(String, Vec<String>)> {
    let rest = &message[message.find("unknown field `")? + "unknown field `".len()..];
    let (key, rest) = rest.split_once('`')?;
    let list = rest.split_once("expected")?.1;
    let valid: Vec<String> = list.split('`').skip(1).step_by(2).map(str::to_string).collect();
    Some((key.to_string(), valid))
}

/// The first paragraph of a toml error (without the snippet of the re-assembled table, whose
/// line numbers are not the file's).
fn first_paragraph(message: &str) -> String {
    let lines: Vec<&str> = message.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('|')).collect();
    let lines: Vec<&str> =
        lines.into_iter().filter(|l| !l.starts_with("TOML parse error") && !l.trim_start().starts_with(char::is_numeric)).collect();
    lines.join(" ")
}

/// The closest valid key by edit distance, if close enough to be a typo (at most a third of the
/// key's letters, and at least 1, differ).
fn nearest<'a>(key: &str, valid: &'a [String]) -> Option<&'a str> {
    let limit = (key.chars().count() / 3).max(1);
    valid.iter().map(|v| (edit_distance(key, v), v)).filter(|(d, _)| *d <= limit).min_by_key(|(d, _)| *d).map(|(_, v)| v.as_str())
}

/// Levenshtein distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Where `key = …` is written in `text`: 1-based line, the enclosing `[section]` header (or "the
/// top level"), and the line as written.
fn locate(key: &str, text: &str) -> Option<(usize, String, String)> {
    let mut section = "the top level".to_string();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            section = t.split('#').next().unwrap_or(t).trim().to_string();
            continue;
        }
        if let Some(rest) = t.strip_prefix(key) {
            if rest.trim_start().starts_with('=') {
                return Some((i + 1, section, t.to_string()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERDE: &str = "unknown field `batch_sise`, expected one of `source`, `target`, `batch_size`, `crop`";

    #[test]
    fn a_typo_gets_the_nearest_key_and_its_line() {
        let text = "[model]\npreset = \"x\"\n\n[data]\ncrop = [1, 2]\nbatch_sise = 4  # two\n";
        let m = explain(SERDE, text, None);
        assert_eq!(
            m,
            "unknown key `batch_sise` in [data] at line 6: `batch_sise = 4  # two`; did you mean `batch_size`? \
             Valid keys there: source, target, batch_size, crop"
        );
    }

    #[test]
    fn an_override_is_named_and_far_keys_get_no_guess() {
        let m = explain("unknown field `zzz`, expected one of `lr`, `eps`", "", Some("optim.zzz=1"));
        assert_eq!(m, "unknown key `zzz` (from --set optim.zzz=1). Valid keys there: lr, eps");
        let other = explain(
            "TOML parse error at line 2, column 4\n  |\n2 | lr = \"a\"\n  |    ^^^\ninvalid type: string \"a\", expected f64\n",
            "",
            Some("optim.lr=a"),
        );
        assert_eq!(other, "from --set optim.lr=a: invalid type: string \"a\", expected f64");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("lrr", "lr"), 1);
        assert_eq!(edit_distance("batch_sise", "batch_size"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
