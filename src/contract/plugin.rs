//! go-plugin's handshake: how a plugin server (HashiCorp go-plugin,
//! pyvider-rpcplugin) says where it serves, in one stdout line
//! `CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT`, once it is ready.
use base64::Engine as _;

/// A parsed handshake line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    /// The core protocol version: 1.
    pub core: u32,
    /// The plugin's own protocol version.
    pub app: u32,
    /// `unix` or `tcp`.
    pub network: String,
    pub address: String,
    /// The server's certificate (DER) for automatic mTLS, when it sent one.
    pub cert_der: Option<Vec<u8>>,
}

impl Handshake {
    /// Parses a handshake line; the error quotes what is wrong with it.
    pub fn parse(line: &str) -> Result<Handshake, String> {
        let quoted = || format!("{:?}", line.chars().take(300).collect::<String>());
        let fields: Vec<&str> = line.trim_end_matches(['\r', '\n']).split('|').collect();
        if !(5..=6).contains(&fields.len()) {
            return Err(format!(
                "not a go-plugin handshake line (CORE|APP|NETWORK|ADDRESS|PROTOCOL|CERT): {} fields in {}",
                fields.len(),
                quoted()
            ));
        }
        let number = |i: usize, what: &str| {
            fields[i].parse::<u32>().map_err(|_| {
                format!(
                    "handshake {what} version {:?} is not a number in {}",
                    fields[i],
                    quoted()
                )
            })
        };
        let core = number(0, "core")?;
        if core != 1 {
            return Err(format!("handshake core version {core} is not 1 in {}", quoted()));
        }
        let app = number(1, "app")?;
        let network = fields[2].to_string();
        if network != "unix" && network != "tcp" {
            return Err(format!(
                "handshake network {network:?} is neither unix nor tcp in {}",
                quoted()
            ));
        }
        let address = fields[3].to_string();
        if address.is_empty() {
            return Err(format!("handshake has no address in {}", quoted()));
        }
        if fields[4] != "grpc" {
            return Err(format!(
                "handshake protocol {:?} is not grpc in {}",
                fields[4],
                quoted()
            ));
        }
        let cert = fields.get(5).copied().unwrap_or_default().trim();
        let cert_der = match cert {
            "" => None,
            b64 => Some(
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(b64.trim_end_matches('='))
                    .map_err(|e| format!("handshake certificate is not base64 ({e}) in {}", quoted()))?,
            ),
        };
        Ok(Handshake {
            core,
            app,
            network,
            address,
            cert_der,
        })
    }

    /// The address as a client's `--server`: `unix:PATH` or `HOST:PORT`.
    pub fn server(&self) -> String {
        match self.network.as_str() {
            "unix" => format!("unix:{}", self.address),
            _ => self.address.clone(),
        }
    }

    /// The certificate as PEM, for a client's `--ca-file`.
    pub fn cert_pem(&self) -> Option<String> {
        let der = self.cert_der.as_ref()?;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
            .collect();
        Some(format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            lines.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_handshake_without_a_certificate() {
        let h = Handshake::parse("1|1|unix|/tmp/plugin123|grpc|\n").unwrap();
        assert_eq!((h.core, h.app, h.network.as_str()), (1, 1, "unix"));
        assert_eq!(h.server(), "unix:/tmp/plugin123");
        assert_eq!(h.cert_der, None);
        let h = Handshake::parse("1|5|tcp|127.0.0.1:1234|grpc").unwrap();
        assert_eq!(h.server(), "127.0.0.1:1234");
    }

    #[test]
    fn a_certificate_is_unpadded_base64_der_and_becomes_pem() {
        let h = Handshake::parse("1|1|tcp|127.0.0.1:1|grpc|MIIBCg").unwrap();
        assert_eq!(h.cert_der.as_deref(), Some(&[0x30, 0x82, 0x01, 0x0a][..]));
        let pem = h.cert_pem().unwrap();
        assert_eq!(
            pem,
            "-----BEGIN CERTIFICATE-----\nMIIBCg==\n-----END CERTIFICATE-----\n"
        );
        assert_eq!(Handshake::parse("1|1|tcp|127.0.0.1:1|grpc|").unwrap().cert_pem(), None);
    }

    #[test]
    fn garbled_lines_are_refused_with_the_line_quoted() {
        for (line, says) in [
            ("listening on 127.0.0.1:5000", "1 fields"),
            ("2|1|unix|/tmp/x|grpc|", "core version 2"),
            ("1|1|udp|/tmp/x|grpc|", "neither unix nor tcp"),
            ("1|1|unix|/tmp/x|netrpc|", "not grpc"),
            ("1|1|unix||grpc|", "no address"),
            ("1|1|unix|/tmp/x|grpc|not base64!", "not base64"),
        ] {
            let e = Handshake::parse(line).unwrap_err();
            assert!(e.contains(says) && e.contains(&format!("{:?}", line)), "{line}: {e}");
        }
    }
}
