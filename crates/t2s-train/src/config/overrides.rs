//! `--set section.key=value`: applied to the configuration's TOML before it is read, and the
//! per-table reading that names the dataset table an error is in.

use super::SetSection;

/// Reads each dataset table on its own first, so that an invalid field combination in one of
/// them is reported with the setting's name (`data.eval[1]: …`).
pub(super) fn check_sets(table: &toml::Table) -> std::result::Result<(), String> {
    let Some(toml::Value::Table(data)) = table.get("data") else { return Ok(()) };
    let mut sets: Vec<(String, &toml::Value)> =
        ["source", "target"].iter().filter_map(|k| data.get(*k).map(|v| (format!("data.{k}"), v))).collect();
    if let Some(toml::Value::Array(evals)) = data.get("eval") {
        sets.extend(evals.iter().enumerate().map(|(i, v)| (format!("data.eval[{i}]"), v)));
    }
    for (name, value) in sets {
        value.clone().try_into::<SetSection>().map_err(|e| format!("{name}: {}", e.message()))?;
    }
    Ok(())
}

/// Sets `a.b.c = value` in `table`, creating tables on the way; a numeric segment indexes an
/// array of tables (`data.eval.0.root`). `value` is parsed as TOML (`0.5`, `true`, `[1, 2]`,
/// `"text"`, `{ mode = "slide" }`) and taken as a plain string when it does not parse.
pub fn apply_override(table: &mut toml::Table, spec: &str) -> std::result::Result<(), String> {
    let (key, value) = spec.split_once('=').ok_or_else(|| format!("--set {spec}: expected section.key=value"))?;
    let path: Vec<&str> = key.trim().split('.').map(str::trim).collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(format!("--set {spec}: empty key segment in `{key}`"));
    }
    let value = value.trim();
    // A whole number TOML cannot hold would otherwise become a string, and its error say "string".
    if value.parse::<i128>().is_ok_and(|v| i64::try_from(v).is_err()) {
        return Err(format!("--set {spec}: {value} is outside the whole numbers a setting takes ({} to {})", i64::MIN, i64::MAX));
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    let mut root = toml::Value::Table(std::mem::take(table));
    let result = set_path(&mut root, &path, parsed, spec);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    result
}

/// Whether `--set spec` gives `key` (`section.name`) a value. A malformed `spec` gives none here;
/// the configuration's parser names it.
pub fn sets_key(spec: &str, key: &str) -> bool {
    let mut table = Default::default();
    if apply_override(&mut table, spec).is_err() {
        return false;
    }
    let mut path = key.split('.');
    let mut node = path.next().and_then(|first| table.get(first));
    for part in path {
        node = node.and_then(|v| v.get(part));
    }
    node.is_some()
}

fn set_path(node: &mut toml::Value, path: &[&str], value: toml::Value, spec: &str) -> std::result::Result<(), String> {
    let Some((head, rest)) = path.split_first() else { return Ok(()) };
    let child = match node {
        toml::Value::Table(t) => {
            if rest.is_empty() {
                t.insert(head.to_string(), value);
                return Ok(());
            }
            t.entry(head.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()))
        }
        toml::Value::Array(items) => {
            let i: usize = head.parse().map_err(|_| format!("--set {spec}: `{head}` must be an index into a list (0, 1, …)"))?;
            let len = items.len();
            let item = items.get_mut(i).ok_or_else(|| format!("--set {spec}: index {i} is past the end of a list of {len}"))?;
            if rest.is_empty() {
                *item = value;
                return Ok(());
            }
            item
        }
        _ => return Err(format!("--set {spec}: `{head}` is inside a value that is neither a table nor a list")),
    };
    set_path(child, rest, value, spec)
}
