//! A WHIP offer is checked before any connection is made: it parses as SDP, has an audio section
//! that offers Opus, and carries a DTLS fingerprint (vaak speaks DTLS-SRTP only). The error says
//! what is missing, in words of bounded length whatever the offer holds (it goes back to the
//! page). Kept apart from the peer connection so that it can be fuzzed on its own
//! (`fuzz/fuzz_targets/whip_offer.rs`).

use rtc::peer_connection::sdp::RTCSessionDescription;

/// Longest piece of the SDP parser's complaint passed back (it may quote the offer).
pub const MAX_DETAIL_CHARS: usize = 160;

/// The offer, parsed, or why vaak cannot answer it.
pub fn check_offer(sdp: &str) -> Result<RTCSessionDescription, String> {
    if !sdp.starts_with("v=0") {
        return Err("the body is not an SDP offer (it must start with `v=0`)".into());
    }
    let invalid =
        |e: rtc::shared::error::Error| format!("invalid SDP: {}", bounded(&e.to_string()));
    let offer = RTCSessionDescription::offer(sdp.to_string()).map_err(invalid)?;
    let parsed = offer.unmarshal().map_err(invalid)?;
    let audio: Vec<_> = parsed
        .media_descriptions
        .iter()
        .filter(|m| m.media_name.media == "audio")
        .collect();
    if audio.is_empty() {
        return Err("the offer has no audio section (m=audio)".into());
    }
    let opus = audio.iter().any(|m| {
        m.attributes.iter().any(|a| {
            let Some((pt, codec)) = a.value.as_deref().and_then(|v| v.split_once(' ')) else {
                return false;
            };
            a.key == "rtpmap"
                && m.media_name.formats.iter().any(|f| f == pt)
                && codec.to_ascii_lowercase().starts_with("opus/48000")
        })
    });
    if !opus {
        return Err("the offer's audio does not include Opus (opus/48000/2)".into());
    }
    let fingerprint =
        parsed.has_attribute("fingerprint") || audio.iter().any(|m| m.has_attribute("fingerprint"));
    if !fingerprint {
        return Err("the offer has no DTLS fingerprint: vaak takes DTLS-SRTP only".into());
    }
    Ok(offer)
}

/// `detail` cut to [`MAX_DETAIL_CHARS`] characters, control characters replaced.
fn bounded(detail: &str) -> String {
    let mut out: String = detail
        .chars()
        .take(MAX_DETAIL_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if detail.chars().count() > MAX_DETAIL_CHARS {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
        a=mid:0\r\na=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
        a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n\
        a=setup:actpass\r\na=sendrecv\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn offers_are_checked_before_negotiation() {
        assert!(check_offer(OFFER).is_ok());
        let e = check_offer("hello").unwrap_err();
        assert!(e.contains("v=0"), "{e}");
        let no_audio = OFFER.replace("m=audio", "m=video");
        assert!(check_offer(&no_audio).unwrap_err().contains("no audio"));
        let pcmu = OFFER.replace("opus/48000/2", "PCMU/8000");
        assert!(check_offer(&pcmu).unwrap_err().contains("Opus"));
        let sdes: String = OFFER
            .lines()
            .filter(|l| !l.starts_with("a=fingerprint"))
            .map(|l| format!("{l}\r\n"))
            .collect();
        assert!(check_offer(&sdes).unwrap_err().contains("DTLS"));
    }

    #[test]
    fn the_sections_are_read_as_sdp_not_as_lines() {
        // Opus named by a payload type the audio section does not offer.
        let stray = OFFER.replace("a=rtpmap:111", "a=rtpmap:96");
        assert!(check_offer(&stray).unwrap_err().contains("Opus"));
        // Opus mapped in a video section, not the audio one.
        let video =
            format!("{OFFER}m=video 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n")
                .replace("a=rtpmap:111 opus/48000/2\r\nm=video", "m=video");
        assert!(check_offer(&video).unwrap_err().contains("Opus"), "{video}");
        // A fingerprint at the session level counts.
        let session_level = OFFER
            .replace("a=fingerprint:", "a=x-moved:")
            .replace("t=0 0\r\n", "t=0 0\r\na=fingerprint:sha-256 00:11\r\n");
        assert!(check_offer(&session_level).is_ok());
    }

    #[test]
    fn a_parser_complaint_is_bounded() {
        let junk = format!("v=0\r\no={}\u{7}\r\n", "x".repeat(10_000));
        let e = check_offer(&junk).unwrap_err();
        assert!(e.chars().count() < MAX_DETAIL_CHARS + 40, "{e}");
        assert!(!e.chars().any(char::is_control), "{e:?}");
    }
}
