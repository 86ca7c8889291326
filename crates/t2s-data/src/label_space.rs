//! The 19 Cityscapes train ids: the label space of every experiment.

/// Label of pixels that are not evaluated or trained on.
pub const IGNORE_LABEL: u8 = 255;

/// A set of classes with names and display colours; index = train id.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSpace {
    pub names: Vec<String>,
    pub colors: Vec<[u8; 3]>,
}

/// Cityscapes classes in train-id order: (name, labelId, colour).
const CITYSCAPES: [(&str, u8, [u8; 3]); 19] = [
    ("road", 7, [128, 64, 128]),
    ("sidewalk", 8, [244, 35, 232]),
    ("building", 11, [70, 70, 70]),
    ("wall", 12, [102, 102, 156]),
    ("fence", 13, [190, 153, 153]),
    ("pole", 17, [153, 153, 153]),
    ("traffic light", 19, [250, 170, 30]),
    ("traffic sign", 20, [220, 220, 0]),
    ("vegetation", 21, [107, 142, 35]),
    ("terrain", 22, [152, 251, 152]),
    ("sky", 23, [70, 130, 180]),
    ("person", 24, [220, 20, 60]),
    ("rider", 25, [255, 0, 0]),
    ("car", 26, [0, 0, 142]),
    ("truck", 27, [0, 0, 70]),
    ("bus", 28, [0, 60, 100]),
    ("train", 31, [0, 80, 100]),
    ("motorcycle", 32, [0, 0, 230]),
    ("bicycle", 33, [119, 11, 32]),
];

impl LabelSpace {
    /// The 19 Cityscapes train ids with the official colours.
    pub fn cityscapes() -> Self {
        Self { names: CITYSCAPES.iter().map(|(n, _, _)| n.to_string()).collect(), colors: CITYSCAPES.iter().map(|(_, _, c)| *c).collect() }
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Display colour of a train id (black for ignore and unknown ids).
    pub fn color(&self, id: u8) -> [u8; 3] {
        self.colors.get(id as usize).copied().unwrap_or([0, 0, 0])
    }
}

/// The 256-entry lookup from Cityscapes labelIds to train ids (255 = ignore for every id not in
/// the table, as Cityscapes' own `labels.py`).
pub fn cityscapes_label_id_to_train_id() -> [u8; 256] {
    let mut lut = [IGNORE_LABEL; 256];
    for (train_id, (_, label_id, _)) in CITYSCAPES.iter().enumerate() {
        lut[*label_id as usize] = train_id as u8;
    }
    lut
}

/// Cityscapes labelId of each of the 19 train ids (`labels.py`'s `trainId2label`): what the
/// Cityscapes benchmark server reads, and mmseg's `to_label_id` writes.
pub fn cityscapes_train_id_to_label_id() -> [u8; 19] {
    CITYSCAPES.map(|(_, label_id, _)| label_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The inverse table is labels.py's `trainId2label`, written out by hand.
    #[test]
    fn train_ids_map_back_to_their_label_ids() {
        assert_eq!(cityscapes_train_id_to_label_id(), [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]);
    }

    #[test]
    fn every_documented_label_id_maps() {
        let lut = cityscapes_label_id_to_train_id();
        let documented = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33];
        for (train_id, label_id) in documented.iter().enumerate() {
            assert_eq!(lut[*label_id], train_id as u8, "labelId {label_id}");
        }
        for ignored in [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 255] {
            assert_eq!(lut[ignored], IGNORE_LABEL, "labelId {ignored}");
        }
    }

    #[test]
    fn palette_matches_the_table() {
        let ls = LabelSpace::cityscapes();
        assert_eq!(ls.len(), 19);
        assert_eq!(ls.names[13], "car");
        assert_eq!(ls.color(0), [128, 64, 128]);
        assert_eq!(ls.color(18), [119, 11, 32]);
        assert_eq!(ls.color(IGNORE_LABEL), [0, 0, 0]);
    }
}
