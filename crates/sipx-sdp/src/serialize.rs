//! Writing an SDP: CRLF line endings and the line order RFC 8866 §5 prescribes.

use std::fmt::{self, Display, Formatter, Write};

use crate::model::{Attribute, Bandwidth, Connection, Line, MediaDescription, SessionDescription};

impl Display for SessionDescription {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let o = &self.origin;
        write!(
            f,
            "v=0\r\no={} {} {} {} {} {}\r\n",
            o.username, o.session_id, o.session_version, o.net_type, o.addr_type, o.address
        )?;
        // s= must not be empty (RFC 8866 §5.3); `-` is the conventional filler.
        let name = if self.session_name.is_empty() {
            "-"
        } else {
            &self.session_name
        };
        write!(f, "s={name}\r\n")?;
        lines(f, &self.info)?;
        if let Some(c) = &self.connection {
            connection(f, c)?;
        }
        bandwidths(f, &self.bandwidths)?;
        if self.timing.is_empty() {
            f.write_str("t=0 0\r\n")?;
        }
        lines(f, &self.timing)?;
        lines(f, &self.other)?;
        attributes(f, &self.attributes)?;
        for m in &self.media {
            media(f, m)?;
        }
        Ok(())
    }
}

impl SessionDescription {
    /// The SDP as bytes, ready to be a SIP body.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }
}

fn media(f: &mut Formatter<'_>, m: &MediaDescription) -> fmt::Result {
    write!(f, "m={} {}", m.kind, m.port)?;
    if let Some(count) = m.port_count {
        write!(f, "/{count}")?;
    }
    write!(f, " {}", m.proto)?;
    for format in &m.formats {
        write!(f, " {format}")?;
    }
    f.write_str("\r\n")?;
    lines(f, &m.info)?;
    for c in &m.connections {
        connection(f, c)?;
    }
    bandwidths(f, &m.bandwidths)?;
    lines(f, &m.other)?;
    attributes(f, &m.attributes)
}

fn lines(f: &mut Formatter<'_>, lines: &[Line]) -> fmt::Result {
    for line in lines {
        write!(f, "{}={}\r\n", line.kind, line.value)?;
    }
    Ok(())
}

fn connection(f: &mut Formatter<'_>, c: &Connection) -> fmt::Result {
    write!(f, "c={} {} {}\r\n", c.net_type, c.addr_type, c.address)
}

fn bandwidths(f: &mut Formatter<'_>, bandwidths: &[Bandwidth]) -> fmt::Result {
    for b in bandwidths {
        write!(f, "b={}:{}\r\n", b.kind, b.value)?;
    }
    Ok(())
}

fn attributes(f: &mut Formatter<'_>, attributes: &[Attribute]) -> fmt::Result {
    for a in attributes {
        f.write_str("a=")?;
        f.write_str(&a.name)?;
        if let Some(value) = &a.value {
            f.write_char(':')?;
            f.write_str(value)?;
        }
        f.write_str("\r\n")?;
    }
    Ok(())
}
