//! Compression applied to an export's bytes on their way to the sink.

use std::io::Write;

use serde::{Deserialize, Serialize};

/// How an export's bytes are compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    /// gzip at level 1: exports are large and repetitive, so the fastest level already
    /// shrinks them about sixfold while keeping up with the database.
    Gzip,
}

impl Compression {
    pub const fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
        }
    }

    /// The file name suffix this compression adds (`.gz`), or nothing.
    pub const fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Gzip => ".gz",
        }
    }

    pub const ALL: [Compression; 2] = [Compression::None, Compression::Gzip];

    pub fn encoder(self) -> Encoder {
        match self {
            Compression::None => Encoder::Identity,
            Compression::Gzip => Encoder::Gzip(Box::new(flate2::write::GzEncoder::new(
                Vec::with_capacity(64 * 1024),
                flate2::Compression::fast(),
            ))),
        }
    }
}

impl std::str::FromStr for Compression {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Compression::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

impl TryFrom<String> for Compression {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse().map_err(|()| format!("unknown compression {s:?}"))
    }
}

/// Turns plain chunks into output chunks.
pub enum Encoder {
    Identity,
    Gzip(Box<flate2::write::GzEncoder<Vec<u8>>>),
}

impl Encoder {
    /// Encodes `input` (which it empties) and returns what is ready to go out, if anything.
    pub fn encode(&mut self, input: &mut Vec<u8>) -> Option<Vec<u8>> {
        match self {
            Encoder::Identity => {
                let capacity = input.capacity();
                let out = std::mem::replace(input, Vec::with_capacity(capacity));
                (!out.is_empty()).then_some(out)
            }
            Encoder::Gzip(gz) => {
                gz.write_all(input).expect("writing to a Vec cannot fail");
                input.clear();
                let ready = gz.get_mut();
                (!ready.is_empty()).then(|| std::mem::take(ready))
            }
        }
    }

    /// Ends the stream: returns the last bytes (gzip's trailer).
    pub fn finish(self) -> Option<Vec<u8>> {
        match self {
            Encoder::Identity => None,
            Encoder::Gzip(gz) => {
                let rest = gz.finish().expect("writing to a Vec cannot fail");
                (!rest.is_empty()).then_some(rest)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn run(compression: Compression, chunks: &[&[u8]]) -> Vec<u8> {
        let mut enc = compression.encoder();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut input = chunk.to_vec();
            if let Some(ready) = enc.encode(&mut input) {
                out.extend(ready);
            }
            assert!(input.is_empty());
        }
        out.extend(enc.finish().unwrap_or_default());
        out
    }

    #[test]
    fn identity_passes_bytes_through() {
        assert_eq!(run(Compression::None, &[b"ab", b"", b"c"]), b"abc");
    }

    #[test]
    fn gzip_decodes_back() {
        let data: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        let chunks: Vec<&[u8]> = data.chunks(7_000).collect();
        let gz = run(Compression::Gzip, &chunks);
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, data);
        assert_eq!(
            run(Compression::Gzip, &[]).len(),
            20,
            "an empty gzip member"
        );
    }
}
