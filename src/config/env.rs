//! `CHATHUB_*` environment variables over the file's fields.

use super::*;

/// Sets the field `path` (`LIMITS__CHATS_PER_IP`) names in `table` to
/// `value`, read as TOML if it is TOML and as a string otherwise.
pub(super) fn set_field(
    table: &mut toml::Table,
    key: &str,
    path: &str,
    value: &str,
) -> Result<(), ConfigError> {
    let invalid = |why: &str| ConfigError::Invalid(format!("environment variable {key}: {why}"));
    let parts: Vec<String> = path.split("__").map(str::to_lowercase).collect();
    let Some((field, tables)) = parts.split_last() else {
        return Err(invalid("names no field"));
    };
    if parts.iter().any(String::is_empty) {
        return Err(invalid("names no field"));
    }
    let mut here = table;
    for name in tables {
        let next = here
            .entry(name.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        here = match next {
            toml::Value::Table(inner) => inner,
            _ => return Err(invalid(&format!("{name} is not a table"))),
        };
    }
    let parsed = toml::from_str::<toml::Table>(&format!("v = {value}"))
        .ok()
        .and_then(|mut parsed| parsed.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_owned()));
    here.insert(field.clone(), parsed);
    Ok(())
}
