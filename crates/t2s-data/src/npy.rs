//! `.npy` output of float arrays (logits), readable by `numpy.load`.

use std::path::Path;

use npyz::WriterBuilder;

use crate::error::{DataError, Result};

/// Writes `data` (row-major, `shape`) as a little-endian float32 `.npy` file.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<()> {
    let err = |message: String| DataError::Write { path: path.to_path_buf(), message };
    let file = std::fs::File::create(path).map_err(|e| err(e.to_string()))?;
    let shape: Vec<u64> = shape.iter().map(|&s| s as u64).collect();
    let mut writer = npyz::WriteOptions::new()
        .default_dtype()
        .shape(&shape)
        .writer(std::io::BufWriter::new(file))
        .begin_nd()
        .map_err(|e| err(e.to_string()))?;
    writer.extend(data.iter().copied()).map_err(|e| err(e.to_string()))?;
    writer.finish().map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_payload_follow_the_npy_format() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        write_f32(&path, &[2, 1, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.5]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'descr': '<f4'"), "{header}");
        let shape: Vec<usize> = header
            .split("'shape': (")
            .nth(1)
            .unwrap()
            .split(')')
            .next()
            .unwrap()
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse().unwrap())
            .collect();
        assert_eq!(shape, [2, 1, 3], "{header}");
        let payload = &bytes[10 + header_len..];
        assert_eq!(payload.len(), 24);
        assert_eq!(f32::from_le_bytes(payload[20..24].try_into().unwrap()), 6.5);
    }
}
