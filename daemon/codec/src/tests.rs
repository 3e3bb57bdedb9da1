use super::*;
use rand::RngCore;

#[test]
fn compress_roundtrip_and_thresholds() {
    let text: Vec<u8> = b"drpair ships chunks. ".iter().cycle().take(65536).copied().collect();
    let mut c = Codec::new(Compression::Zstd(3));
    let packed = c.compress(&text).expect("text compresses");
    assert!(packed.len() < text.len() / 10);
    let mut d = Codec::default();
    assert_eq!(d.decompress(&packed, text.len() as u32).unwrap(), text);

    let mut noise = vec![0u8; 65536];
    rand::rng().fill_bytes(&mut noise);
    assert!(c.compress(&noise).is_none(), "random data ships raw");
    assert!(c.compress(&[]).is_none());

    c.set(Compression::Off);
    assert!(c.compress(&text).is_none());
    c.set(Compression::Zstd(1000));
    assert_eq!(c.setting(), Compression::Zstd(*zstd::compression_level_range().end()));
    assert!(c.compress(&text).is_some());
}

#[test]
fn decompress_never_trusts_lengths() {
    let data = vec![7u8; 65536];
    let packed = Codec::new(Compression::Zstd(1)).compress(&data).unwrap();
    let mut d = Codec::default();
    // Claims fewer bytes than the payload holds: refused, no larger buffer.
    assert!(matches!(d.decompress(&packed, 4096), Err(CodecError::Corrupt { .. })));
    // Claims more: decompresses, but the length must match exactly.
    assert!(matches!(d.decompress(&packed, 65537), Err(CodecError::LengthMismatch { got: 65536, .. })));
    // Absurd length from the wire: refused before allocating.
    assert!(matches!(d.decompress(&packed, u32::MAX), Err(CodecError::TooLong { .. })));
    // Garbage.
    let e = d.decompress(b"not zstd at all", 100).unwrap_err();
    assert!(e.to_string().contains("corrupt"), "{e}");
    assert_eq!(e.class(), ErrorClass::Permanent);
    // Still usable afterwards.
    assert_eq!(d.decompress(&packed, 65536).unwrap(), data);
}

#[test]
fn thread_codec_round_trips_at_any_level() {
    let noise_free: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    for level in [1, 3, 19, 1000] {
        let z = compress_at(level, &noise_free).unwrap();
        assert!(z.len() < noise_free.len());
        assert_eq!(decompress(&z, noise_free.len() as u32).unwrap(), noise_free);
    }
    // Kept even when it does not pay (stores that always keep zstd).
    let z = compress_at(1, b"x").unwrap();
    assert_eq!(decompress(&z, 1).unwrap(), b"x");
    assert!(compress_bound(65536) >= 65536);
}
