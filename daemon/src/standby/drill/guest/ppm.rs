//! PPM (P6, 8-bit) to PNG, for a QEMU whose `screendump` cannot write PNG itself.

use std::io::{Error, ErrorKind};
use std::path::Path;

/// Largest screen converted (a 16K × 16K screen).
const MAX_PIXELS: u64 = 1 << 28;

/// The width, height and RGB bytes of a binary PPM.
pub fn parse_ppm(data: &[u8]) -> Result<(u32, u32, &[u8]), Error> {
    let bad = |m: &str| Error::new(ErrorKind::InvalidData, format!("screendump PPM: {m}"));
    let mut pos = 0;
    let mut fields = Vec::with_capacity(4);
    while fields.len() < 4 {
        while pos < data.len() && (data[pos].is_ascii_whitespace() || data[pos] == b'#') {
            if data[pos] == b'#' {
                while pos < data.len() && data[pos] != b'\n' {
                    pos += 1;
                }
            } else {
                pos += 1;
            }
        }
        let start = pos;
        while pos < data.len() && !data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        if start == pos {
            return Err(bad("truncated header"));
        }
        fields.push(std::str::from_utf8(&data[start..pos]).map_err(|_| bad("header"))?);
    }
    pos += 1; // the one whitespace byte after maxval
    if fields[0] != "P6" || fields[3] != "255" {
        return Err(bad("not an 8-bit P6"));
    }
    let w: u32 = fields[1].parse().map_err(|_| bad("width"))?;
    let h: u32 = fields[2].parse().map_err(|_| bad("height"))?;
    let len = u64::from(w) * u64::from(h);
    if len == 0 || len > MAX_PIXELS {
        return Err(bad("size out of range"));
    }
    let bytes = usize::try_from(len * 3).map_err(|_| bad("size out of range"))?;
    let rgb = data.get(pos..pos + bytes).ok_or_else(|| bad("truncated pixels"))?;
    Ok((w, h, rgb))
}

/// Converts the PPM at `ppm` into a PNG at `png`.
pub fn ppm_file_to_png(ppm: &Path, png: &Path) -> Result<(), Error> {
    let data = std::fs::read(ppm)?;
    let (w, h, rgb) = parse_ppm(&data)?;
    let file = std::io::BufWriter::new(std::fs::File::create(png)?);
    let mut enc = png::Encoder::new(file, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(Error::other)?;
    writer.write_image_data(rgb).map_err(Error::other)?;
    writer.finish().map_err(Error::other)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ppm_becomes_a_png_of_its_size() {
        let mut ppm = b"P6\n# qemu\n3 2\n255\n".to_vec();
        ppm.extend((0..18).map(|i| i as u8 * 10));
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("s.ppm"), &ppm).unwrap();
        ppm_file_to_png(&dir.path().join("s.ppm"), &dir.path().join("s.png")).unwrap();
        let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(dir.path().join("s.png")).unwrap()));
        let info = dec.read_info().unwrap();
        assert_eq!((info.info().width, info.info().height), (3, 2));
        assert!(parse_ppm(b"P6\n3 2\n255\n\x00").is_err());
        assert!(parse_ppm(b"P3\n1 1\n255\n000").is_err());
    }
}
