//! QR codes of WhatsApp linking strings: as PNG for the admin API and the pairing page, and as
//! text for the terminal (`waedge device link`).

use qrcode::render::unicode::Dense1x2;
use qrcode::{Color, QrCode};

/// Pixels per QR module in PNGs.
const SCALE: usize = 8;
/// Light modules around the code, as the QR standard asks.
const QUIET_ZONE: usize = 4;

/// Why a QR code could not be made (the text is too long for a QR code).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode this text as a QR code: {0}")]
pub struct QrError(#[from] qrcode::types::QrError);

/// `text` as a black-on-white grayscale PNG.
pub fn png(text: &str) -> Result<Vec<u8>, QrError> {
    let code = QrCode::new(text.as_bytes())?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET_ZONE) * SCALE;
    let mut pixels = vec![0xffu8; side * side];
    for (index, color) in colors.iter().enumerate() {
        if *color == Color::Dark {
            let (x, y) = ((index % modules + QUIET_ZONE) * SCALE, (index / modules + QUIET_ZONE) * SCALE);
            for row in y..y + SCALE {
                pixels[row * side + x..row * side + x + SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side).expect("a QR code is small");
    let mut encoder = png::Encoder::new(&mut out, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().expect("writing to memory cannot fail");
    writer.write_image_data(&pixels).expect("writing to memory cannot fail");
    writer.finish().expect("writing to memory cannot fail");
    Ok(out)
}

/// `text` as a QR code in Unicode half blocks, dark on light, for a terminal.
pub fn terminal(text: &str) -> Result<String, QrError> {
    let code = QrCode::new(text.as_bytes())?;
    Ok(code.render::<Dense1x2>().dark_color(Dense1x2::Light).light_color(Dense1x2::Dark).quiet_zone(true).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_png_of_the_right_size() {
        let png = png("2@abc,def,ghi,jkl").unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let decoder = ::png::Decoder::new(std::io::Cursor::new(png));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        let modules = QrCode::new(b"2@abc,def,ghi,jkl").unwrap().width();
        assert_eq!(info.width as usize, (modules + 2 * QUIET_ZONE) * SCALE);
    }

    #[test]
    fn renders_text_rows() {
        let text = terminal("hello").unwrap();
        let modules = QrCode::new(b"hello").unwrap().width() + 2 * QUIET_ZONE;
        assert_eq!(text.lines().count(), modules.div_ceil(2));
    }
}
