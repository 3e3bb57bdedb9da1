//! The image formats the dump loader reads, and what probing an image found.

use std::fmt;

/// Image formats the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// The disk's bytes, as is (a file or a block device).
    Raw,
    /// A QEMU copy-on-write image, converted to raw with `qemu-img` before loading.
    Qcow2,
}

impl ImageFormat {
    /// The format's name as operators write it: `raw` or `qcow2`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ImageFormat {
    type Err = String;

    /// Parses `raw` or `qcow2` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "raw" => Ok(ImageFormat::Raw),
            "qcow2" => Ok(ImageFormat::Qcow2),
            _ => Err(format!("unknown image format '{s}': expected raw or qcow2")),
        }
    }
}

/// What `probe` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image's format (as detected from its content).
    pub format: ImageFormat,
    /// Size in bytes of the disk the image holds (equal to the disk's size once probed).
    pub virtual_size: u64,
}
