//! The report's fonts: DejaVu Sans, embedded in the binary, and fallbacks for what it lacks.
//!
//! DejaVu Sans covers Latin, Greek, Cyrillic, Armenian, Georgian, Hebrew and Arabic. For
//! Chinese, Japanese and Korean the report falls back, character by character, to fonts found
//! on the machine: the files named by `PDF_FALLBACK_FONTS`, else the first of a few common
//! system CJK fonts that exists ([`SYSTEM_FALLBACKS`]). Only the glyphs a report uses are
//! embedded in it (krilla subsets every font).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use skrifa::instance::{LocationRef, Size};
use skrifa::{FontRef, MetadataProvider};

/// CJK fonts a Debian or Ubuntu machine may have, tried in order when `PDF_FALLBACK_FONTS`
/// is not set (`fonts-noto-cjk`, `fonts-droid-fallback`, `fonts-wqy-zenhei`).
pub const SYSTEM_FALLBACKS: [&str; 4] = [
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
];

/// One font face: its bytes (embedded, or read once and kept for the process) and its index
/// in a collection.
#[derive(Clone, Copy)]
pub struct Face {
    pub data: &'static [u8],
    pub index: u32,
}

impl Face {
    fn font_ref(&self) -> Option<FontRef<'static>> {
        FontRef::from_index(self.data, self.index).ok()
    }

    fn covers(&self, c: char) -> bool {
        self.font_ref().and_then(|f| f.charmap().map(c)).is_some()
    }
}

/// The faces a report draws with: regular and bold, then fallbacks for both.
pub struct FontSet {
    pub regular: Face,
    pub bold: Face,
    pub fallbacks: Vec<Face>,
}

static FALLBACKS: OnceLock<Vec<Face>> = OnceLock::new();

/// Sets the fallback fonts from files (`PDF_FALLBACK_FONTS`) before the first report. An
/// unreadable or invalid file is an error that names it. The fonts are the process's: the
/// first setting (or, without one, the first of [`SYSTEM_FALLBACKS`] that loads) stays.
pub fn use_fallback_fonts(paths: &[PathBuf]) -> Result<(), String> {
    let mut faces = Vec::new();
    for path in paths {
        faces.push(load(path)?);
    }
    let _ = FALLBACKS.set(faces);
    Ok(())
}

fn load(path: &Path) -> Result<Face, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // Kept for the life of the process: fonts are loaded once, like the embedded ones.
    let data: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let face = Face { data, index: 0 };
    face.font_ref()
        .ok_or_else(|| format!("{}: not a TrueType or OpenType font", path.display()))?;
    Ok(face)
}

impl FontSet {
    pub fn get() -> FontSet {
        let fallbacks = FALLBACKS.get_or_init(|| {
            SYSTEM_FALLBACKS
                .iter()
                .find_map(|p| load(Path::new(p)).ok())
                .into_iter()
                .collect()
        });
        FontSet {
            regular: Face {
                data: dejavu::sans::regular(),
                index: 0,
            },
            bold: Face {
                data: dejavu::sans::bold(),
                index: 0,
            },
            fallbacks: fallbacks.clone(),
        }
    }

    /// Splits `text` into runs, each with the face that draws it: the first of the primary
    /// face and the fallbacks that has the character. A character none has stays with the
    /// primary face (it shows as an empty box), and so do spaces and marks between runs.
    pub fn runs<'t>(&self, text: &'t str, bold: bool) -> Vec<(Face, &'t str)> {
        let primary = if bold { self.bold } else { self.regular };
        let pick = |c: char| -> usize {
            if c.is_whitespace() || primary.covers(c) {
                return 0;
            }
            self.fallbacks
                .iter()
                .position(|f| f.covers(c))
                .map_or(0, |i| i + 1)
        };
        let face = |i: usize| {
            if i == 0 {
                primary
            } else {
                self.fallbacks[i - 1]
            }
        };
        let mut runs = Vec::new();
        let mut start = 0;
        let mut current = None;
        for (at, c) in text.char_indices() {
            let i = pick(c);
            match current {
                None => current = Some(i),
                // Whitespace joins whatever run it is in.
                Some(cur) if cur != i && !c.is_whitespace() => {
                    runs.push((face(cur), &text[start..at]));
                    start = at;
                    current = Some(i);
                }
                Some(_) => {}
            }
        }
        if let Some(cur) = current {
            runs.push((face(cur), &text[start..]));
        }
        runs
    }

    /// The width of `text` at `size` points (advance widths, without kerning).
    pub fn width(&self, text: &str, bold: bool, size: f32) -> f32 {
        self.runs(text, bold)
            .iter()
            .map(|(face, run)| run_width(face, run, size))
            .sum()
    }

    /// `text` cut to fit `max` points, with an ellipsis where it was cut; newlines and tabs
    /// become spaces.
    pub fn fit(&self, text: &str, bold: bool, size: f32, max: f32) -> String {
        let flat: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let flat = flat.trim();
        if self.width(flat, bold, size) <= max {
            return flat.to_owned();
        }
        let ellipsis = self.width("…", bold, size);
        let mut out = String::new();
        let mut used = 0.0;
        for (face, run) in self.runs(flat, bold) {
            for c in run.chars() {
                let mut buf = [0u8; 4];
                let w = run_width(&face, c.encode_utf8(&mut buf), size);
                if used + w + ellipsis > max {
                    out.truncate(out.trim_end().len());
                    out.push('…');
                    return out;
                }
                used += w;
                out.push(c);
            }
        }
        out
    }
}

fn run_width(face: &Face, text: &str, size: f32) -> f32 {
    let Some(font) = face.font_ref() else {
        return 0.0;
    };
    let charmap = font.charmap();
    let metrics = font.glyph_metrics(Size::new(size), LocationRef::default());
    text.chars()
        .map(|c| {
            let glyph = charmap.map(c).unwrap_or_default();
            metrics.advance_width(glyph).unwrap_or(0.0)
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set() -> FontSet {
        FontSet {
            fallbacks: Vec::new(),
            ..FontSet::get()
        }
    }

    #[test]
    fn dejavu_covers_latin_greek_cyrillic_hebrew_and_arabic() {
        let fonts = set();
        for c in ['é', 'ß', 'Ω', 'Ж', 'ש', 'ع', '€', '…'] {
            assert!(fonts.regular.covers(c), "{c}");
            assert!(fonts.bold.covers(c), "{c}");
        }
        assert!(!fonts.regular.covers('東'));
    }

    #[test]
    fn text_is_cut_to_fit_with_an_ellipsis() {
        let fonts = set();
        let long = "Acme Corporation International Holdings";
        let width = fonts.width(long, false, 10.0);
        assert!(width > 100.0, "{width}");
        let cut = fonts.fit(long, false, 10.0, 80.0);
        assert!(cut.ends_with('…') && cut.len() < long.len(), "{cut}");
        assert!(fonts.width(&cut, false, 10.0) <= 80.0);
        assert_eq!(fonts.fit("Short", false, 10.0, 80.0), "Short");
        assert_eq!(fonts.fit("two\nlines\t", false, 10.0, 80.0), "two lines");
    }

    #[test]
    fn runs_switch_to_a_fallback_only_for_what_the_primary_lacks() {
        // DejaVu Sans ExtraLight has no Arabic; the regular face, as its fallback, has.
        let light = Face {
            data: dejavu::sans::extra_light(),
            index: 0,
        };
        assert!(!light.covers('ع'));
        let fonts = FontSet {
            regular: light,
            bold: light,
            fallbacks: vec![set().regular],
        };
        let runs: Vec<&str> = fonts
            .runs("Acme شركة عربية Ltd", false)
            .iter()
            .map(|r| r.1)
            .collect();
        assert_eq!(runs, ["Acme ", "شركة عربية ", "Ltd"]);
        assert_eq!(fonts.runs("", false).len(), 0);
        // Widths add up over the runs.
        let whole = fonts.width("Acme شركة", false, 10.0);
        let parts = fonts.width("Acme ", false, 10.0) + fonts.width("شركة", false, 10.0);
        assert!((whole - parts).abs() < 0.01);
    }
}
