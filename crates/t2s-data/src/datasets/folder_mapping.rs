//! The mapping file of a custom folder dataset (TOML): its class list (names, colours) and which
//! stored label value means which class. Format and example: docs/datasets.md and
//! configs/datasets/example_mapping.toml.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::mapping::ValueMap;
use crate::error::{DataError, Result};
use crate::label_space::{LabelSpace, IGNORE_LABEL};

/// What a label value that the file lists nowhere does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownValues {
    /// An error naming the label file, the value and its pixel (the default: a value nobody
    /// listed is more likely a mistake than "not labelled").
    #[default]
    Error,
    /// Such pixels become 255 (ignored in training and evaluation).
    Ignore,
}

/// One class of the file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClassEntry {
    name: String,
    color: [u8; 3],
    /// Stored label values of this class; default: the class's index.
    values: Option<Vec<u8>>,
}

/// The file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    #[serde(default)]
    unknown: UnknownValues,
    /// Values that mean "not labelled" (→ 255).
    #[serde(default = "default_ignore")]
    ignore: Vec<u8>,
    classes: Vec<ClassEntry>,
}

fn default_ignore() -> Vec<u8> {
    vec![IGNORE_LABEL]
}

/// A parsed and checked mapping file.
#[derive(Debug, Clone)]
pub struct FolderMapping {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    /// Classes in train-id order (train id = position in the file).
    pub space: LabelSpace,
    /// Stored value → train id (255 for ignore values), 256 entries.
    pub lut: [u8; 256],
    /// Values the file lists (classes and `ignore`).
    pub listed: [bool; 256],
    /// What unlisted values do.
    pub unknown: UnknownValues,
}

impl FolderMapping {
    /// Reads and checks a mapping file; errors name the file and the offending entry.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.to_path_buf(), source })?;
        Self::parse(&text, path)
    }

    /// Parses and checks mapping-file text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |message: String| DataError::Mapping { path: path.to_path_buf(), message };
        let file: MappingFile = toml::from_str(text).map_err(|e| err(e.to_string()))?;
        if file.classes.is_empty() {
            return Err(err("no [[classes]]: list at least one class".into()));
        }
        // Train id 255 is ignore, so at most 255 classes (0..=254).
        if file.classes.len() > IGNORE_LABEL as usize {
            return Err(err(format!("{} classes; at most 255 are possible (train id 255 means ignore)", file.classes.len())));
        }
        let mut lut = [IGNORE_LABEL; 256];
        let mut listed = [false; 256];
        let mut owner: BTreeMap<u8, String> = BTreeMap::new();
        let mut claim = |value: u8, who: String| -> Result<()> {
            if let Some(first) = owner.get(&value) {
                return Err(err(format!("label value {value} is listed for both {first} and {who}")));
            }
            owner.insert(value, who);
            listed[value as usize] = true;
            Ok(())
        };
        for &v in &file.ignore {
            claim(v, "ignore".into())?;
        }
        let mut names: Vec<String> = Vec::with_capacity(file.classes.len());
        for (id, class) in file.classes.iter().enumerate() {
            let name = class.name.trim();
            if name.is_empty() {
                return Err(err(format!("class {id} has an empty name")));
            }
            if names.iter().any(|n| n == name) {
                return Err(err(format!("class name {name:?} appears twice")));
            }
            let values = class.values.clone().unwrap_or_else(|| vec![id as u8]);
            if values.is_empty() {
                return Err(err(format!("class {name:?} has an empty `values` list")));
            }
            for v in values {
                claim(v, format!("class {name:?}"))?;
                lut[v as usize] = id as u8;
            }
            names.push(name.to_string());
        }
        let space = LabelSpace { names, colors: file.classes.iter().map(|c| c.color).collect() };
        Ok(Self { path: path.to_path_buf(), space, lut, listed, unknown: file.unknown })
    }

    /// The value table readers apply: unlisted values are an error naming this file, or 255.
    pub fn value_map(&self) -> ValueMap {
        match self.unknown {
            UnknownValues::Ignore => ValueMap::total(self.lut),
            UnknownValues::Error => ValueMap::partial(
                self.lut,
                self.listed,
                format!("listed in {} (add it to a class's `values` or to `ignore`, or set unknown = \"ignore\")", self.path.display()),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
unknown = "error"
ignore = [0, 255]

[[classes]]
name = "road"
color = [128, 64, 128]
values = [1, 3]

[[classes]]
name = "car"
color = [0, 0, 142]
values = [7]

[[classes]]
name = "sky"
color = [70, 130, 180]
"#;

    #[test]
    fn example_file_maps_hand_checked_values() {
        let m = FolderMapping::parse(EXAMPLE, Path::new("m.toml")).unwrap();
        assert_eq!(m.space.names, ["road", "car", "sky"]);
        assert_eq!(m.space.colors[1], [0, 0, 142]);
        let map = m.value_map();
        // road 1, 3 → 0; car 7 → 1; sky lists no values, so its own index 2 → 2; 0 and 255 ignore.
        for (value, id) in [(1, 0), (3, 0), (7, 1), (2, 2), (0, 255), (255, 255)] {
            assert_eq!(map.get(value), Some(id), "value {value}");
        }
        for unlisted in [4, 5, 6, 8, 254] {
            assert_eq!(map.get(unlisted), None, "value {unlisted}");
        }
        assert!(map.allowed().contains("m.toml") && map.allowed().contains("unknown = \"ignore\""));
    }

    #[test]
    fn the_documented_example_file_parses() {
        let text = include_str!("../../../../configs/datasets/example_mapping.toml");
        let m = FolderMapping::parse(text, Path::new("example_mapping.toml")).unwrap();
        assert_eq!(m.space.names, ["road", "building", "vegetation", "sky", "car"]);
        let map = m.value_map();
        for (value, id) in [(1, 0), (2, 0), (3, 1), (4, 2), (5, 2), (6, 3), (7, 4), (0, 255), (255, 255)] {
            assert_eq!(map.get(value), Some(id), "value {value}");
        }
        assert_eq!(map.get(8), None);
    }

    #[test]
    fn unknown_ignore_sends_unlisted_values_to_255() {
        let text = EXAMPLE.replace("unknown = \"error\"", "unknown = \"ignore\"");
        let map = FolderMapping::parse(&text, Path::new("m.toml")).unwrap().value_map();
        assert_eq!((map.get(4), map.get(7), map.get(254)), (Some(255), Some(1), Some(255)));
    }

    #[test]
    fn defaults_are_error_on_unknown_and_ignore_255() {
        let m = FolderMapping::parse("[[classes]]\nname = \"a\"\ncolor = [1, 2, 3]", Path::new("m.toml")).unwrap();
        assert_eq!(m.unknown, UnknownValues::Error);
        let map = m.value_map();
        assert_eq!((map.get(0), map.get(255), map.get(1)), (Some(0), Some(255), None));
    }

    #[test]
    fn inconsistent_files_name_the_problem() {
        let cases = [
            (EXAMPLE.replace("values = [7]", "values = [3]"), "label value 3 is listed for both class \"road\" and class \"car\""),
            (EXAMPLE.replace("ignore = [0, 255]", "ignore = [7]"), "label value 7 is listed for both ignore and class \"car\""),
            (EXAMPLE.replace("name = \"sky\"", "name = \"car\""), "class name \"car\" appears twice"),
            (EXAMPLE.replace("name = \"sky\"", "name = \" \""), "class 2 has an empty name"),
            (EXAMPLE.replace("values = [7]", "values = []"), "class \"car\" has an empty `values` list"),
            (EXAMPLE.replace("values = [7]", "values = [700]"), "values"),
            (EXAMPLE.replace("unknown = \"error\"", "unknown = \"skip\""), "unknown"),
            (EXAMPLE.replace("color = [0, 0, 142]", "colour = [0, 0, 142]"), "colour"),
            ("ignore = [255]\nclasses = []".to_string(), "no [[classes]]"),
        ];
        for (text, expect) in cases {
            let err = FolderMapping::parse(&text, Path::new("my_mapping.toml")).unwrap_err().to_string();
            assert!(err.contains("my_mapping.toml: mapping file") && err.contains(expect), "{expect}: {err}");
        }
        let too_many: String =
            (0..256).map(|i| format!("[[classes]]\nname = \"c{i}\"\ncolor = [0, 0, 0]\nvalues = [{}]\n", i % 256)).collect();
        let err = FolderMapping::parse(&too_many, Path::new("m.toml")).unwrap_err().to_string();
        assert!(err.contains("256 classes; at most 255"), "{err}");
        let err = FolderMapping::load(Path::new("/nonexistent/m.toml")).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/m.toml"), "{err}");
    }
}
