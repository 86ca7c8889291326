//! Lookup tables from each dataset's stored label values to the 19 Cityscapes train ids
//! (docs/datasets.md lists every entry), and `ValueMap`, the table form every reader applies.

use crate::label_space::{cityscapes_label_id_to_train_id, IGNORE_LABEL};

/// GTA5 labels store Cityscapes labelIds as palette indices: the Cityscapes table, where every
/// index outside the 19 trained labelIds (including 34 and above) is 255.
pub fn gta5_label_id_to_train_id() -> [u8; 256] {
    cityscapes_label_id_to_train_id()
}

/// SYNTHIA class id (first channel of `GT/LABELS`) → train id; void (0), parking (13),
/// road-work (14), lane-marking (22) and every id not listed → 255.
pub fn synthia_id_to_train_id(id: u16) -> u8 {
    match id {
        3 => 0,   // road
        4 => 1,   // sidewalk
        2 => 2,   // building
        21 => 3,  // wall
        5 => 4,   // fence
        7 => 5,   // pole
        15 => 6,  // traffic light
        9 => 7,   // traffic sign
        6 => 8,   // vegetation
        16 => 9,  // terrain
        1 => 10,  // sky
        10 => 11, // person
        17 => 12, // rider
        8 => 13,  // car
        18 => 14, // truck
        19 => 15, // bus
        20 => 16, // train
        12 => 17, // motorcycle
        11 => 18, // bicycle
        _ => IGNORE_LABEL,
    }
}

/// Mapillary Vistas v1.2 class id (66 classes) → train id; every id not listed → 255.
pub fn mapillary_id_to_train_id() -> [u8; 256] {
    // (Vistas ids, train id), transcribed from docs/datasets.md.
    const TABLE: [(&[u8], u8); 19] = [
        (&[13, 24, 41], 0),  // road, lane marking – general, manhole
        (&[2, 15], 1),       // curb, sidewalk
        (&[17], 2),          // building
        (&[6], 3),           // wall
        (&[3], 4),           // fence
        (&[45, 47], 5),      // pole, utility pole
        (&[48], 6),          // traffic light
        (&[50], 7),          // traffic sign (front)
        (&[30], 8),          // vegetation
        (&[29], 9),          // terrain
        (&[27], 10),         // sky
        (&[19], 11),         // person
        (&[20, 21, 22], 12), // bicyclist, motorcyclist, other rider
        (&[55], 13),         // car
        (&[61], 14),         // truck
        (&[54], 15),         // bus
        (&[58], 16),         // on rails
        (&[57], 17),         // motorcycle
        (&[52], 18),         // bicycle
    ];
    let mut lut = [IGNORE_LABEL; 256];
    for (ids, train_id) in TABLE {
        for &id in ids {
            lut[id as usize] = train_id;
        }
    }
    lut
}

/// The values a mask that already holds Cityscapes train ids may contain: 0..=18 and 255
/// (BDD100K masks, Cityscapes `_labelTrainIds.png`). Anything else means the file is not such a
/// mask, so it is an error rather than a silent guess.
pub fn train_id_values() -> [bool; 256] {
    let mut known = [false; 256];
    known[..19].fill(true);
    known[IGNORE_LABEL as usize] = true;
    known
}

/// The identity table for masks that already hold train ids.
pub fn identity() -> [u8; 256] {
    std::array::from_fn(|i| i as u8)
}

/// A stored label value → train id table, applied to every pixel, with the set of values the
/// format defines: a value outside it is an error naming the file, never a silent class.
#[derive(Debug, Clone)]
pub struct ValueMap {
    /// Train id per stored value (256 entries for 8-bit labels, 65,536 for 16-bit ones).
    lut: Box<[u8]>,
    /// Values the format defines; `None`: every value is defined (unlisted ones are documented
    /// to mean ignore).
    known: Option<Box<[bool]>>,
    /// Words for the defined values, used in the error message ("a BDD100K train id (0–18 or 255)").
    allowed: String,
}

impl ValueMap {
    /// An 8-bit table where every value is defined.
    pub fn total(lut: [u8; 256]) -> Self {
        Self { lut: Box::new(lut), known: None, allowed: String::new() }
    }

    /// An 8-bit table where only `known` values are defined; `allowed` describes them.
    pub fn partial(lut: [u8; 256], known: [bool; 256], allowed: impl Into<String>) -> Self {
        Self { lut: Box::new(lut), known: Some(Box::new(known)), allowed: allowed.into() }
    }

    /// A 16-bit table built from a function of the stored value; every value is defined.
    pub fn total_u16(f: impl Fn(u16) -> u8) -> Self {
        let lut: Vec<u8> = (0..=u16::MAX).map(f).collect();
        Self { lut: lut.into_boxed_slice(), known: None, allowed: String::new() }
    }

    /// Train id of a stored value, or `None` when the format does not define the value.
    pub fn get(&self, value: u16) -> Option<u8> {
        let id = *self.lut.get(value as usize)?;
        match &self.known {
            Some(known) if !known[value as usize] => None,
            _ => Some(id),
        }
    }

    /// Words describing the defined values (empty for total tables).
    pub fn allowed(&self) -> &str {
        &self.allowed
    }

    /// A 64-bit FNV-1a hash of the table and its defined set: class statistics computed with a
    /// different mapping are not reused.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fnv1a::new();
        h.write(&self.lut);
        if let Some(known) = &self.known {
            h.write(&[1]);
            h.write(&known.iter().map(|&k| k as u8).collect::<Vec<_>>());
        }
        h.finish()
    }
}

/// 64-bit FNV-1a: a tiny, specified (hence stable across versions) hash for fingerprints.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    /// The FNV-1a offset basis.
    pub(crate) fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes `bytes` in.
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    /// The hash so far.
    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every GTA5 palette index that docs/datasets.md lists, with its train id, and every
    /// documented ignored labelId.
    #[test]
    fn gta5_every_documented_label_id() {
        let lut = gta5_label_id_to_train_id();
        let pairs: [(usize, u8); 19] = [
            (7, 0),
            (8, 1),
            (11, 2),
            (12, 3),
            (13, 4),
            (17, 5),
            (19, 6),
            (20, 7),
            (21, 8),
            (22, 9),
            (23, 10),
            (24, 11),
            (25, 12),
            (26, 13),
            (27, 14),
            (28, 15),
            (31, 16),
            (32, 17),
            (33, 18),
        ];
        for (label_id, train_id) in pairs {
            assert_eq!(lut[label_id], train_id, "labelId {label_id}");
        }
        for ignored in [0, 1, 2, 3, 4, 5, 6, 9, 10, 14, 15, 16, 18, 29, 30, 34, 35, 100, 254, 255] {
            assert_eq!(lut[ignored], 255, "labelId {ignored}");
        }
        let mapped = lut.iter().filter(|&&v| v != 255).count();
        assert_eq!(mapped, 19, "exactly the 19 documented labelIds are trained on");
    }

    #[test]
    fn synthia_every_documented_id() {
        let pairs: [(u16, u8); 19] = [
            (3, 0),
            (4, 1),
            (2, 2),
            (21, 3),
            (5, 4),
            (7, 5),
            (15, 6),
            (9, 7),
            (6, 8),
            (16, 9),
            (1, 10),
            (10, 11),
            (17, 12),
            (8, 13),
            (18, 14),
            (19, 15),
            (20, 16),
            (12, 17),
            (11, 18),
        ];
        for (id, train_id) in pairs {
            assert_eq!(synthia_id_to_train_id(id), train_id, "SYNTHIA id {id}");
        }
        for void in [0, 13, 14, 22, 23, 100, 255, 256, 1000, u16::MAX] {
            assert_eq!(synthia_id_to_train_id(void), 255, "SYNTHIA id {void}");
        }
        let map = ValueMap::total_u16(synthia_id_to_train_id);
        assert_eq!(map.get(21), Some(3));
        assert_eq!(map.get(65535), Some(255));
    }

    #[test]
    fn mapillary_every_documented_id() {
        let lut = mapillary_id_to_train_id();
        let pairs: [(usize, u8); 25] = [
            (13, 0),
            (24, 0),
            (41, 0),
            (2, 1),
            (15, 1),
            (17, 2),
            (6, 3),
            (3, 4),
            (45, 5),
            (47, 5),
            (48, 6),
            (50, 7),
            (30, 8),
            (29, 9),
            (27, 10),
            (19, 11),
            (20, 12),
            (21, 12),
            (22, 12),
            (55, 13),
            (61, 14),
            (54, 15),
            (58, 16),
            (57, 17),
            (52, 18),
        ];
        for (id, train_id) in pairs {
            assert_eq!(lut[id], train_id, "Vistas id {id}");
        }
        let listed: Vec<usize> = pairs.iter().map(|p| p.0).collect();
        for (id, &train_id) in lut.iter().enumerate() {
            if !listed.contains(&id) {
                assert_eq!(train_id, 255, "Vistas id {id} is documented as ignore");
            }
        }
    }

    #[test]
    fn train_id_masks_accept_exactly_0_to_18_and_255() {
        let map = ValueMap::partial(identity(), train_id_values(), "a train id");
        assert_eq!(map.get(0), Some(0));
        assert_eq!(map.get(18), Some(18));
        assert_eq!(map.get(255), Some(255));
        for bad in [19, 20, 100, 254, 256] {
            assert_eq!(map.get(bad), None, "value {bad}");
        }
    }

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV specification's test suite: "" and "a".
        assert_eq!(Fnv1a::new().finish(), 0xcbf29ce484222325);
        let mut h = Fnv1a::new();
        h.write(b"a");
        assert_eq!(h.finish(), 0xaf63dc4c8601ec8c);
        assert_ne!(ValueMap::total(identity()).fingerprint(), ValueMap::total(gta5_label_id_to_train_id()).fingerprint());
    }
}
