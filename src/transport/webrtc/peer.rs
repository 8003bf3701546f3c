//! One browser's peer connection (webrtc-rs): Opus only, DTLS-SRTP, host candidates on
//! `webrtc.bind_ip` plus the configured STUN/TURN servers, answered without trickle ICE (the
//! answer holds every candidate, as WHIP expects). webrtc-rs reports through callbacks; they
//! only forward into bounded channels the call loop selects on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::media::Sample;
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodecParameters, RTCRtpCodingParameters, RTCRtpEncodingParameters,
    RtpCodecKind,
};
use tokio::sync::{mpsc, watch};
use webrtc::data_channel::DataChannel;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::media_stream::MediaStreamTrack;
use webrtc::peer_connection::{
    register_default_interceptors, MediaEngine, PeerConnection, PeerConnectionBuilder,
    PeerConnectionEventHandler, RTCConfigurationBuilder, RTCIceGatheringState, RTCIceServer,
    RTCPeerConnectionState, RTCSessionDescription, Registry, SettingEngineBuilder,
};

use crate::audio::opus::FRAME_MS;
use crate::config::WebrtcConfig;

/// Opus as browsers offer it (payload type 111 in Chromium and Firefox); the answer asks the
/// browser for in-band FEC.
const OPUS_PAYLOAD_TYPE: u8 = 111;
const OPUS_FMTP: &str = "minptime=10;useinbandfec=1";
/// Candidate gathering before the answer is sent (host candidates take milliseconds; a STUN
/// or TURN server may take longer).
const GATHER_TIMEOUT: Duration = Duration::from_secs(3);
/// Data-channel bytes queued before `send` waits (backpressure on the call's events).
const DATA_CHANNEL_BUFFER: usize = 256 * 1024;
/// New tracks and data channels waiting for the call loop (a page has one of each).
const ANNOUNCE_EDGE: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The offer cannot be negotiated (the browser's fault: 400).
    #[error("cannot negotiate the offer: {0}")]
    Negotiation(String),
    /// vaak's side failed (500).
    #[error("peer connection: {0}")]
    Internal(String),
}

/// What webrtc-rs tells the call, as channels.
pub struct PeerEvents {
    pub tracks: mpsc::Receiver<Arc<dyn TrackRemote>>,
    pub channels: mpsc::Receiver<Arc<dyn DataChannel>>,
    pub state: watch::Receiver<RTCPeerConnectionState>,
}

struct Handler {
    tracks: mpsc::Sender<Arc<dyn TrackRemote>>,
    channels: mpsc::Sender<Arc<dyn DataChannel>>,
    state: watch::Sender<RTCPeerConnectionState>,
    gathered: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.state.send(state);
    }

    async fn on_data_channel(&self, channel: Arc<dyn DataChannel>) {
        // A page opens one channel; more than the edge holds are refused by dropping them.
        let _ = self.channels.try_send(channel);
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let _ = self.tracks.try_send(track);
    }
}

/// A negotiated connection with its reply track.
pub struct Peer {
    pub pc: Arc<dyn PeerConnection>,
    reply: Arc<TrackLocalStaticSample>,
    ssrc: u32,
    payload_type: u8,
}

impl Peer {
    /// Sends one 20 ms Opus packet on the reply track.
    pub async fn send_frame(&self, packet: Vec<u8>) -> Result<(), String> {
        let sample = Sample {
            data: packet.into(),
            duration: Duration::from_millis(FRAME_MS),
            ..Sample::new(Instant::now())
        };
        self.reply
            .sample_writer(self.ssrc, self.payload_type)
            .write_sample(&sample)
            .await
            .map_err(|e| e.to_string())
    }

    /// Closes the connection (DTLS close, sockets released), bounded.
    pub async fn close(&self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.pc.close()).await;
    }
}

fn opus() -> RTCRtpCodec {
    RTCRtpCodec {
        mime_type: MIME_TYPE_OPUS.to_owned(),
        clock_rate: 48_000,
        channels: 2,
        sdp_fmtp_line: OPUS_FMTP.to_owned(),
        rtcp_feedback: vec![],
    }
}

fn ice_servers(cfg: &WebrtcConfig) -> Vec<RTCIceServer> {
    cfg.ice_servers
        .iter()
        .map(|s| RTCIceServer {
            urls: s.urls.clone(),
            username: s.username.clone().unwrap_or_default(),
            // Validated at start: the variable is set.
            credential: s
                .credential_env
                .as_ref()
                .and_then(|v| std::env::var(v).ok())
                .unwrap_or_default(),
        })
        .collect()
}

/// Answers `offer`: returns the connection, its events and the answer's SDP (with candidates).
pub async fn answer(
    cfg: &WebrtcConfig,
    offer: RTCSessionDescription,
) -> Result<(Peer, PeerEvents, String), PeerError> {
    let internal = |e: webrtc::error::Error| PeerError::Internal(e.to_string());
    let mut media = MediaEngine::default();
    media
        .register_codec(
            RTCRtpCodecParameters {
                rtp_codec: opus(),
                payload_type: OPUS_PAYLOAD_TYPE,
            },
            RtpCodecKind::Audio,
        )
        .map_err(internal)?;
    let registry = register_default_interceptors(Registry::new(), &mut media).map_err(internal)?;
    let config = RTCConfigurationBuilder::new()
        .with_ice_servers(ice_servers(cfg))
        .build();
    let (tracks_tx, tracks) = mpsc::channel(ANNOUNCE_EDGE);
    let (channels_tx, channels) = mpsc::channel(ANNOUNCE_EDGE);
    let (state_tx, state) = watch::channel(RTCPeerConnectionState::New);
    let (gathered_tx, mut gathered) = watch::channel(false);
    let handler = Arc::new(Handler {
        tracks: tracks_tx,
        channels: channels_tx,
        state: state_tx,
        gathered: gathered_tx,
    });
    let pc = PeerConnectionBuilder::new()
        .with_configuration(config)
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_setting_engine(
            // No mDNS: it binds port 5353 per connection and needs a multicast route. Browsers
            // that hide their address behind a `.local` name reach vaak by STUN or TURN.
            SettingEngineBuilder::new()
                .with_multicast_dns_mode(MulticastDnsMode::Disabled)
                .build(),
        )
        .with_udp_addrs(vec![format!("{}:0", cfg.bind_ip)])
        .with_data_channel_send_buffer_limit(DATA_CHANNEL_BUFFER)
        .build()
        .await
        .map_err(internal)?;
    let pc: Arc<dyn PeerConnection> = Arc::new(pc);
    let ssrc = rand::random::<u32>();
    let reply = Arc::new(
        TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                "vaak".to_string(),
                "vaak-reply".to_string(),
                "vaak reply".to_string(),
                RtpCodecKind::Audio,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: opus(),
                    ..Default::default()
                }],
            ),
        )
        .map_err(internal)?,
    );
    let sender = pc
        .add_track(Arc::clone(&reply) as Arc<dyn TrackLocal>)
        .await
        .map_err(internal)?;
    let negotiate = |e: webrtc::error::Error| PeerError::Negotiation(e.to_string());
    let result = async {
        pc.set_remote_description(offer).await.map_err(negotiate)?;
        let answer = pc.create_answer(None).await.map_err(negotiate)?;
        pc.set_local_description(answer).await.map_err(internal)?;
        let _ = tokio::time::timeout(GATHER_TIMEOUT, gathered.wait_for(|g| *g)).await;
        let sdp = pc
            .local_description()
            .await
            .map(|d| d.sdp)
            .ok_or_else(|| PeerError::Internal("no local description".into()))?;
        let payload_type = sender
            .get_parameters()
            .await
            .map_err(internal)?
            .rtp_parameters
            .codecs
            .first()
            .map(|c| c.payload_type)
            .ok_or_else(|| PeerError::Negotiation("the offer accepts no Opus audio".into()))?;
        Ok::<_, PeerError>((sdp, payload_type))
    }
    .await;
    match result {
        Ok((sdp, payload_type)) => Ok((
            Peer {
                pc,
                reply,
                ssrc,
                payload_type,
            },
            PeerEvents {
                tracks,
                channels,
                state,
            },
            sdp,
        )),
        Err(e) => {
            let _ = tokio::time::timeout(Duration::from_secs(2), pc.close()).await;
            Err(e)
        }
    }
}
