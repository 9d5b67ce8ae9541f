// sipx-client.js: join a SIPx built-in room from a browser (WebRTC + the JSON signalling of
// docs/rooms-signalling.md). A dependency-free ES module for modern browsers; no build step.
//
//   import { SipxRoom } from '/sipx-client.js';
//   const room = await SipxRoom.join({ token, publish: { audio: true, video: true } });
//   room.addEventListener('track', (e) => attach(e.detail.identity, e.detail.track));

/**
 * A participant as the server describes it.
 * @typedef {object} Participant
 * @property {string} identity Unique in the room.
 * @property {string} name Display name.
 * @property {'browser'|'phone'} kind
 * @property {{kind: 'audio'|'video', muted: boolean}[]} tracks
 * @property {boolean} muted
 * @property {boolean} speaking
 * @property {number} joined_at When it joined, Unix seconds (server clock).
 * @property {string} [call_id] Phone participants: the call.
 * @property {string} [call_state] Phone participants: the call's state (`CONFIRMED` once
 *   answered and in the room; absent while it joins).
 */

/**
 * A received track, as carried by the `track` event and listed in {@link SipxRoom#tracks}.
 * @typedef {object} RemoteTrack
 * @property {MediaStreamTrack} track
 * @property {string} identity Whose track it is.
 * @property {'audio'|'video'} kind
 * @property {string} mid The transceiver (m-line) it arrives on.
 * @property {MediaStream} stream A stream holding just this track, for `srcObject`.
 */

const PING_MS = 20_000;
const WELCOME_TIMEOUT_MS = 15_000;

// Close codes of the signalling socket (docs/rooms-signalling.md) and the reasons reported.
const CLOSE_REASONS = {
  4401: 'unauthorized', 4403: 'forbidden', 4404: 'room_not_found', 4409: 'identity_taken', 4503: 'unavailable',
};

/** The `/v1/rtc` URL of the page's own origin (ws: or wss: as the page). */
function defaultUrl() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/v1/rtc`;
}

/**
 * A session in a SIPx room. Create it with {@link SipxRoom.join}.
 *
 * Events (all `CustomEvent`s; the payload is in `event.detail`):
 * - `participant-joined` `{participant}`
 * - `participant-left` `{identity, reason, participant}`
 * - `participant-updated` `{participant, previous}`
 * - `self-updated` `{participant, previous}`: {@link SipxRoom#self} changed (muted by the API)
 * - `track` {@link RemoteTrack}: a remote participant's audio or video began to arrive
 * - `track-ended` {@link RemoteTrack}: it stopped (participant left, unpublished, m-line reused)
 * - `speaking` `{speakers: [{identity, level}]}`: loudest first, level 0..1
 * - `call-state` `{identity, call_id, call_state, participant}`: a phone participant's call
 * - `closed` `{reason}`: the session is over (`left`, `replaced`, `unauthorized`, `forbidden`,
 *   `room_not_found`, `identity_taken`, `unavailable`, `stopping`, a server reason, or `disconnected`);
 *   emitted once
 * - `error` `{code, message}`: a request was refused or the WebRTC side failed
 */
export class SipxRoom extends EventTarget {
  /**
   * Connects to a room and starts publishing.
   * @param {object} options
   * @param {string} options.token The join token (from `POST /v1/rooms/{room}/tokens`).
   * @param {string} [options.url] The `/v1/rtc` WebSocket URL; default: this page's origin.
   * @param {{audio?: boolean, video?: boolean}|false} [options.publish] What to send;
   *   default `{audio: true, video: true}`; `false` to only listen and watch.
   * @param {MediaStream} [options.mediaStream] Tracks to publish instead of asking
   *   `getUserMedia` (they are not stopped on leave).
   * @param {RTCIceServer[]} [options.iceServers] None by default: the server is ICE-lite.
   * @returns {Promise<SipxRoom>} Resolves once the server welcomed the participant.
   */
  static async join({ url, token, publish = { audio: true, video: true }, mediaStream, iceServers = [] } = {}) {
    if (!token) throw new TypeError('SipxRoom.join: a token is required');
    const room = new SipxRoom(iceServers);
    try {
      if (mediaStream) room.#adopt(mediaStream);
      else if (publish && (publish.audio || publish.video)) await room.#capture(publish);
      await room.#connect(url || defaultUrl(), token);
    } catch (err) {
      room.#teardown();
      throw err;
    }
    return room;
  }

  /** @type {Map<string, Participant>} Everyone else in the room, by identity. */
  participants = new Map();
  /** @type {Participant|null} This participant, as the server knows it. */
  self = null;
  /** @type {string} The room's name. */
  name = '';
  /** @type {MediaStream} What this participant publishes (for a local preview). */
  localStream = new MediaStream();

  #pc;
  #ws = null;
  #ping = 0;
  #closed = false;
  #makingOffer = false;
  #ownedTracks = new Set();
  /** @type {Map<string, {participant: string, kind: string}>} mid → sender, from `tracks`. */
  #mapping = new Map();
  /** @type {Map<string, MediaStreamTrack>} mid → track received on it. */
  #received = new Map();
  /** @type {Map<string, RemoteTrack>} mid → the track announced by a `track` event. */
  #announced = new Map();
  /** SDP work, one step at a time, in the order messages arrived. */
  #queue = Promise.resolve();

  /** @private Use {@link SipxRoom.join}. */
  constructor(iceServers) {
    super();
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    this.#pc = pc;
    pc.addEventListener('negotiationneeded', () => this.#enqueue(() => this.#offer()));
    pc.addEventListener('track', (e) => {
      const mid = e.transceiver.mid;
      if (mid === null) return;
      this.#received.set(mid, e.track);
      e.track.addEventListener('ended', () => {
        if (this.#received.get(mid) === e.track) this.#received.delete(mid);
        this.#syncTracks();
      });
      this.#syncTracks();
    });
    pc.addEventListener('iceconnectionstatechange', () => {
      const state = pc.iceConnectionState;
      if (!this.#closed && (state === 'disconnected' || state === 'failed')) pc.restartIce();
    });
  }

  /** @returns {RemoteTrack[]} The remote tracks announced so far and not ended. */
  get tracks() {
    return [...this.#announced.values()];
  }

  /** @returns {RTCPeerConnection} The underlying connection (for stats). */
  get peerConnection() {
    return this.#pc;
  }

  /**
   * Publishes (or stops publishing) the microphone and camera.
   * @param {{audio?: boolean, video?: boolean}} what `true` to send that kind, `false` to stop;
   *   a kind left out is unchanged.
   * @returns {Promise<MediaStream>} {@link SipxRoom#localStream}.
   */
  async publish({ audio, video } = {}) {
    if (this.#closed) throw new Error('SipxRoom.publish: the session is closed');
    const want = { audio, video };
    const missing = {};
    for (const kind of ['audio', 'video']) {
      const has = this.localStream.getTracks().some((t) => t.kind === kind);
      if (want[kind] === true && !has) missing[kind] = true;
      if (want[kind] === false && has) this.#unpublish(kind);
    }
    if (missing.audio || missing.video) await this.#capture(missing);
    return this.localStream;
  }

  /**
   * Mutes or unmutes this participant's own audio or video (the track keeps flowing as
   * silence/black), and tells the others.
   * @param {'audio'|'video'} kind
   * @param {boolean} muted
   */
  setMuted(kind, muted) {
    for (const t of this.localStream.getTracks()) if (t.kind === kind) t.enabled = !muted;
    this.#send({ type: 'mute', kind, muted: Boolean(muted) });
  }

  /** Leaves the room: tells the server, closes the connection, stops captured tracks. */
  leave() {
    this.#send({ type: 'leave' });
    this.#finish('left');
  }

  // --- media ---------------------------------------------------------------------------------

  async #capture({ audio, video }) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: Boolean(audio), video: Boolean(video) });
    for (const t of stream.getTracks()) this.#ownedTracks.add(t);
    this.#adopt(stream);
  }

  #adopt(stream) {
    for (const track of stream.getTracks()) {
      this.localStream.addTrack(track);
      if (this.#ws) this.#sendTrack(track);
    }
  }

  // Reuses an idle sending transceiver of the kind, so unpublish/publish cycles add no m-lines.
  #sendTrack(track) {
    const idle = this.#pc.getTransceivers().find((tr) => tr.sender.track === null && tr.direction === 'inactive'
      && tr.receiver.track.kind === track.kind && tr.stopped !== true && this.#isOwnSender(tr));
    if (idle) {
      idle.sender.replaceTrack(track);
      idle.direction = 'sendonly';
    } else {
      this.#pc.addTransceiver(track, { direction: 'sendonly', streams: [this.localStream] });
    }
  }

  #isOwnSender(tr) {
    return tr.mid === null || !this.#mapping.has(tr.mid);
  }

  #unpublish(kind) {
    for (const track of this.localStream.getTracks().filter((t) => t.kind === kind)) {
      this.localStream.removeTrack(track);
      if (this.#ownedTracks.delete(track)) track.stop();
      const tr = this.#pc.getTransceivers().find((x) => x.sender.track === track);
      if (tr) {
        tr.sender.replaceTrack(null);
        tr.direction = 'inactive';
      }
    }
  }

  // --- signalling ----------------------------------------------------------------------------

  #connect(url, token) {
    const target = new URL(url, location.href);
    if (target.protocol === 'http:' || target.protocol === 'https:') {
      target.protocol = target.protocol === 'https:' ? 'wss:' : 'ws:';
    }
    target.searchParams.set('token', token);
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(target);
      this.#ws = ws;
      const timer = setTimeout(() => fail(new Error('SipxRoom.join: no welcome from the server')), WELCOME_TIMEOUT_MS);
      let welcomed = false;
      const fail = (err) => {
        clearTimeout(timer);
        if (!welcomed) reject(err);
      };
      ws.addEventListener('message', (e) => {
        let msg;
        try {
          msg = JSON.parse(e.data);
        } catch {
          this.#emit('error', { code: 'bad_message', message: 'the server sent a frame that is not JSON' });
          return;
        }
        if (!welcomed && msg.type === 'welcome') {
          welcomed = true;
          clearTimeout(timer);
          this.#welcome(msg);
          resolve();
        } else if (welcomed) {
          this.#dispatch(msg);
        }
      });
      ws.addEventListener('close', (e) => {
        const reason = CLOSE_REASONS[e.code] || 'disconnected';
        fail(new Error(`SipxRoom.join: the server closed the connection (${e.code} ${e.reason || reason})`));
        this.#finish(reason);
      });
      ws.addEventListener('error', () => fail(new Error('SipxRoom.join: the signalling connection failed')));
    });
  }

  #welcome(msg) {
    this.name = msg.room;
    this.self = msg.participant;
    for (const p of msg.participants || []) this.participants.set(p.identity, p);
    this.#ping = setInterval(() => this.#send({ type: 'ping' }), PING_MS);
    for (const track of this.localStream.getTracks()) this.#sendTrack(track);
  }

  #dispatch(msg) {
    switch (msg.type) {
      case 'offer': return this.#enqueue(() => this.#onOffer(msg.sdp));
      case 'answer': return this.#enqueue(() => this.#onAnswer(msg.sdp));
      // In the queue: a mapping applies after the offers sent before it.
      case 'tracks': return this.#enqueue(() => this.#onTracks(msg.tracks || []));
      case 'participant_joined': return this.#onJoined(msg.participant);
      case 'participant_updated': return this.#onUpdated(msg.participant);
      case 'participant_left': return this.#onLeft(msg.identity, msg.reason);
      case 'speaking': return this.#onSpeaking(msg.speakers || []);
      case 'error': return this.#emit('error', { code: msg.code, message: msg.message });
      case 'closed': return this.#finish(msg.reason || 'closed');
      default: return undefined; // `pong`, and types added later
    }
  }

  #enqueue(step) {
    this.#queue = this.#queue.then(step).catch((err) => {
      if (!this.#closed) this.#emit('error', { code: 'webrtc', message: String(err && err.message || err) });
    });
  }

  async #offer() {
    if (this.#closed || !this.#ws || this.#pc.signalingState !== 'stable') return;
    this.#makingOffer = true;
    try {
      await this.#pc.setLocalDescription();
      this.#send({ type: 'offer', sdp: this.#pc.localDescription.sdp });
    } finally {
      this.#makingOffer = false;
    }
  }

  // The client is impolite: a server offer that collides with its own is ignored; the server,
  // polite, answers ours and offers again afterwards.
  async #onOffer(sdp) {
    if (this.#makingOffer || this.#pc.signalingState !== 'stable') return;
    await this.#pc.setRemoteDescription({ type: 'offer', sdp });
    await this.#pc.setLocalDescription();
    this.#send({ type: 'answer', sdp: this.#pc.localDescription.sdp });
    this.#syncTracks();
  }

  async #onAnswer(sdp) {
    if (this.#pc.signalingState !== 'have-local-offer') return;
    await this.#pc.setRemoteDescription({ type: 'answer', sdp });
    this.#syncTracks();
  }

  #onTracks(tracks) {
    this.#mapping = new Map(tracks.map((t) => [t.mid, { participant: t.participant, kind: t.kind }]));
    this.#syncTracks();
  }

  // Announces each received track once its sender is known, and ends the announcement when the
  // mapping drops the mid or gives it to someone else (the server reuses m-lines).
  #syncTracks() {
    if (this.#closed) return;
    for (const [mid, was] of this.#announced) {
      const now = this.#mapping.get(mid);
      if (!now || now.participant !== was.identity || this.#received.get(mid) !== was.track) {
        this.#announced.delete(mid);
        this.#emit('track-ended', was);
      }
    }
    for (const [mid, { participant, kind }] of this.#mapping) {
      const track = this.#received.get(mid);
      if (!track || this.#announced.has(mid)) continue;
      const remote = { track, identity: participant, kind, mid, stream: new MediaStream([track]) };
      this.#announced.set(mid, remote);
      this.#emit('track', remote);
    }
  }

  #onJoined(participant) {
    if (participant.identity === this.self?.identity) return;
    this.participants.set(participant.identity, participant);
    this.#emit('participant-joined', { participant });
    if (participant.kind === 'phone') this.#emitCallState(participant);
  }

  #onUpdated(participant) {
    if (this.self && participant.identity === this.self.identity) {
      // This participant changed: muted through the API, say, which it did not do itself.
      const previous = this.self;
      this.self = participant;
      this.#emit('self-updated', { participant, previous });
      return;
    }
    const previous = this.participants.get(participant.identity);
    this.participants.set(participant.identity, participant);
    this.#emit('participant-updated', { participant, previous });
    if (participant.kind === 'phone' && previous?.call_state !== participant.call_state) {
      this.#emitCallState(participant);
    }
  }

  #onLeft(identity, reason) {
    const participant = this.participants.get(identity);
    this.participants.delete(identity);
    this.#emit('participant-left', { identity, reason, participant });
  }

  #onSpeaking(speakers) {
    const levels = new Map(speakers.map((s) => [s.identity, s.level]));
    for (const p of [this.self, ...this.participants.values()]) {
      if (p) p.speaking = levels.has(p.identity);
    }
    this.#emit('speaking', { speakers });
  }

  #emitCallState(participant) {
    const { identity, call_id, call_state } = participant;
    this.#emit('call-state', { identity, call_id, call_state, participant });
  }

  #send(msg) {
    if (this.#ws && this.#ws.readyState === WebSocket.OPEN) this.#ws.send(JSON.stringify(msg));
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #finish(reason) {
    if (this.#closed) return;
    this.#teardown();
    this.#emit('closed', { reason });
  }

  #teardown() {
    this.#closed = true;
    clearInterval(this.#ping);
    for (const remote of this.#announced.values()) this.#emit('track-ended', remote);
    this.#announced.clear();
    this.#mapping.clear();
    if (this.#ws && this.#ws.readyState <= WebSocket.OPEN) this.#ws.close(1000);
    this.#pc.close();
    for (const t of this.#ownedTracks) t.stop();
    this.#ownedTracks.clear();
  }
}
