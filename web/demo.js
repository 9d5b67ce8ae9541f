// The SIPx Rooms demo page: API credentials, signed requests (WebCrypto), a room with video
// tiles for browsers and level tiles for phone participants, dial-out and hang-up.
// Everything is built with DOM calls and textContent: nothing from the network becomes markup.

import { SipxRoom } from '/sipx-client.js';

const STORE_KEY = 'sipx.demo.api_key';
const STORE_SECRET = 'sipx.demo.api_secret';
const STORE_NAME = 'sipx.demo.name';
/** How long a request signature stays valid, in seconds (the server allows up to a day). */
const SIGNATURE_TTL = 300;

const $ = (selector, root = document) => root.querySelector(selector);

// ---- request signing (sipx_secrets::signature) ---------------------------------------------

function base64url(bytes) {
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/**
 * The request signature: base64url_nopad(HMAC-SHA256(key = apiSecret, msg = apiKey ‖ expireAt)).
 * @param {string} apiKey
 * @param {string} expireAt Unix time in seconds, as sent.
 * @param {string} apiSecret
 * @returns {Promise<string>}
 */
export async function sign(apiKey, expireAt, apiSecret) {
  const utf8 = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', utf8.encode(apiSecret), { name: 'HMAC', hash: 'SHA-256' },
    false, ['sign']);
  const mac = await crypto.subtle.sign('HMAC', key, utf8.encode(apiKey + expireAt));
  return base64url(new Uint8Array(mac));
}

/** A refused request, carrying its RFC 9457 problem document (or one made up for it). */
export class ApiProblem extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export function loadCredentials() {
  const apiKey = localStorage.getItem(STORE_KEY);
  const apiSecret = localStorage.getItem(STORE_SECRET);
  return apiKey && apiSecret ? { apiKey, apiSecret } : null;
}

/**
 * Calls the SIPx API with a signed request (`Authorization: Sipx …` header).
 * @returns {Promise<any>} The JSON body; throws {@link ApiProblem} on a non-2xx answer.
 */
export async function api(method, path, body, creds = loadCredentials()) {
  if (!creds) {
    throw new ApiProblem(0, { title: 'No API credentials', detail: 'Add your application’s API key and secret first.' });
  }
  const expireAt = String(Math.floor(Date.now() / 1000) + SIGNATURE_TTL);
  const signature = await sign(creds.apiKey, expireAt, creds.apiSecret);
  const headers = { Authorization: `Sipx api_key=${creds.apiKey}, expire_at=${expireAt}, signature=${signature}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'omit', cache: 'no-store',
    });
  } catch (err) {
    throw new ApiProblem(0, { title: 'SIPx is unreachable', detail: String(err.message || err) });
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const problem = data && typeof data === 'object' ? data : { title: res.statusText, detail: text.slice(0, 300) };
    throw new ApiProblem(res.status, problem);
  }
  return data;
}

// ---- small DOM helpers -------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

/**
 * Shows a success line, or an error (an ApiProblem's document, field by field) in `box`,
 * under `context` (what was being done) when given.
 */
function showResult(box, result, context) {
  box.replaceChildren();
  box.hidden = false;
  box.classList.remove('info');
  if (typeof result === 'string') {
    box.classList.add('ok');
    box.append(result);
    return;
  }
  box.classList.remove('ok');
  const p = result instanceof ApiProblem ? result.problem : { title: 'Something went wrong', detail: String(result?.message || result) };
  const status = result instanceof ApiProblem && result.status ? ` (${result.status})` : '';
  const title = `${p.title || 'Request refused'}${status}`;
  box.append(el('strong', { textContent: context || title }));
  const detail = context ? [title, p.detail].filter(Boolean).join(': ') : p.detail;
  if (detail) box.append(el('span', { textContent: detail }));
  if (Array.isArray(p.errors) && p.errors.length) {
    box.append(el('ul', {}, ...p.errors.map((e) => el('li', { textContent: `${e.field}: ${e.message}` }))));
  }
  if (p.type) box.append(el('code', { className: 'problem-type', textContent: p.type }));
  box.scrollIntoView({ block: 'nearest' });
}

/** Shows something the user should know that is neither a success nor a failure. */
function showNotice(box, title, detail) {
  box.replaceChildren(el('strong', { textContent: title }), el('span', { textContent: detail }));
  box.classList.remove('ok');
  box.classList.add('info');
  box.hidden = false;
  box.scrollIntoView({ block: 'nearest' });
}

function hideResult(box) {
  box.hidden = true;
  box.replaceChildren();
}

function initials(name) {
  const words = String(name || '?').trim().split(/\s+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[words.length - 1][0] : (words[0] || '?').slice(0, 2)).toUpperCase();
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}

// ---- credentials -------------------------------------------------------------------------

const chip = $('#credentials-chip');
const settings = $('#settings');
const settingsForm = $('#settings-form');

function setChip(state, text) {
  chip.dataset.state = state;
  $('.chip-text', chip).textContent = text;
  $('#needs-credentials').hidden = state !== 'none';
}

/** Checks the stored credentials with a signed `GET /v1/app`. */
async function checkCredentials() {
  const creds = loadCredentials();
  if (!creds) {
    setChip('none', 'Add API key');
    return null;
  }
  setChip('checking', 'Checking…');
  try {
    const app = await api('GET', '/v1/app', undefined, creds);
    setChip('ok', app.name);
    chip.title = `Application ${app.name} (${app.id})`;
    return app;
  } catch (err) {
    setChip('error', err instanceof ApiProblem && err.status === 401 ? 'Credentials refused' : 'API unreachable');
    chip.title = err.message;
    throw err;
  }
}

/** Takes `#api_key=…&api_secret=…` from the address, stores it and removes it from history. */
function credentialsFromFragment() {
  const params = new URLSearchParams(location.hash.slice(1));
  const apiKey = params.get('api_key');
  const apiSecret = params.get('api_secret');
  if (!apiKey || !apiSecret) return;
  localStorage.setItem(STORE_KEY, apiKey);
  localStorage.setItem(STORE_SECRET, apiSecret);
  history.replaceState(null, '', location.pathname + location.search);
}

function openSettings() {
  const creds = loadCredentials();
  settingsForm.elements.api_key.value = creds?.apiKey || '';
  settingsForm.elements.api_secret.value = creds?.apiSecret || '';
  hideResult($('[data-testid="settings-error"]'));
  settings.showModal();
  settingsForm.elements[creds ? 'api_secret' : 'api_key'].focus();
}

async function saveSettings(event) {
  event.preventDefault();
  const apiKey = settingsForm.elements.api_key.value.trim();
  const apiSecret = settingsForm.elements.api_secret.value.trim();
  const box = $('[data-testid="settings-error"]');
  if (!apiKey || !apiSecret) {
    showResult(box, new ApiProblem(0, { title: 'Both fields are needed', detail: 'Paste the API key and the API secret of your application.' }));
    return;
  }
  localStorage.setItem(STORE_KEY, apiKey);
  localStorage.setItem(STORE_SECRET, apiSecret);
  try {
    await busy(event.submitter || $('[data-testid="save-credentials"]'), checkCredentials);
    settings.close();
  } catch (err) {
    showResult(box, err);
  }
}

chip.addEventListener('click', openSettings);
$('[data-open-settings]').addEventListener('click', openSettings);
$('#close-settings').addEventListener('click', () => settings.close());
settingsForm.addEventListener('submit', saveSettings);
$('#forget-credentials').addEventListener('click', () => {
  localStorage.removeItem(STORE_KEY);
  localStorage.removeItem(STORE_SECRET);
  settingsForm.reset();
  setChip('none', 'Add API key');
  settings.close();
});

// ---- the room ----------------------------------------------------------------------------

const lobby = $('#lobby');
const roomView = $('#room');
const tiles = $('#tiles');
const audioSink = $('#audio-sink');
const joinForm = $('#join-form');
const dialForm = $('#dial-form');
const micButton = $('#mic-button');
const camButton = $('#cam-button');

/** The live session, or null in the lobby. */
let session = null;

/** The joined room (a SipxRoom), or null: for the console and end-to-end tests. */
export function currentRoom() {
  return session?.room ?? null;
}

function tileOf(identity) {
  return [...tiles.children].find((t) => t.dataset.identity === identity) || null;
}

function ensureTile(participant, isSelf = false) {
  let tile = tileOf(participant.identity);
  if (!tile) {
    const template = $(participant.kind === 'phone' ? '#phone-tile' : '#browser-tile');
    tile = template.content.firstElementChild.cloneNode(true);
    tile.dataset.identity = participant.identity;
    tile.classList.toggle('self', isSelf);
    if (participant.kind === 'phone') {
      $('.hangup', tile).addEventListener('click', (e) => hangUp(participant.identity, e.currentTarget));
      // Phones first: they are why this page exists.
      tiles.prepend(tile);
    } else if (isSelf) {
      tiles.prepend(tile);
    } else {
      tiles.append(tile);
    }
    updateTile(tile, participant, isSelf);
    // Tracks can arrive before the participant's tile exists.
    if (!isSelf) for (const remote of session.room.tracks) if (remote.identity === participant.identity) attach(tile, remote);
  } else {
    updateTile(tile, participant, isSelf);
  }
  updateCount();
  return tile;
}

function updateTile(tile, participant, isSelf) {
  const name = participant.name || participant.identity;
  $('.tile-name', tile).textContent = isSelf ? `${name} (you)` : name;
  tile.setAttribute('aria-label', `${participant.kind === 'phone' ? 'Phone' : 'Participant'} ${name}`);
  if (participant.kind === 'phone') {
    const hangup = $('.hangup', tile);
    hangup.setAttribute('aria-label', `Hang up ${name}`);
    hangup.title = `Hang up ${name}`;
    const state = callState(participant.call_state);
    const box = $('.call-state', tile);
    $('.state-label', box).textContent = state.label;
    box.dataset.state = state.style;
    // The call's age counts from when it joined the room (server time, Unix seconds).
    if (Number.isFinite(participant.joined_at)) tile.dataset.since = String(participant.joined_at);
    showCallTime(tile);
  } else {
    $('.avatar', tile).textContent = initials(name);
    const audioMuted = participant.muted || (participant.tracks || []).some((t) => t.kind === 'audio' && t.muted);
    $('.muted-icon', tile).toggleAttribute('hidden', !audioMuted); // an SVG element: no .hidden
    const video = (participant.tracks || []).find((t) => t.kind === 'video');
    if (video && !isSelf) tile.classList.toggle('video-muted', Boolean(video.muted));
  }
}

/**
 * How a phone's `call_state` reads on its tile. The server names SIP dialog states in capitals
 * (`CONFIRMED` once the phone is answered and in the room); none yet while it joins.
 * @returns {{label: string, style: string}} `style` picks the colour (demo.css).
 */
function callState(raw) {
  const known = {
    '': ['Connecting', 'connecting'],
    trying: ['Calling', 'dialing'],
    calling: ['Calling', 'dialing'],
    proceeding: ['Ringing', 'ringing'],
    early: ['Ringing', 'ringing'],
    ringing: ['Ringing', 'ringing'],
    confirmed: ['Connected', 'connected'],
    terminated: ['Ended', 'ended'],
  };
  const key = String(raw || '').toLowerCase();
  const [label, style] = known[key] || [key.replaceAll('_', ' '), key];
  return { label, style };
}

/** `m:ss` (or `h:mm:ss`) since the tile's call joined, while it is connected. */
function showCallTime(tile) {
  const box = $('.call-time', tile);
  const since = Number(tile.dataset.since);
  let text = '';
  if ($('.call-state', tile).dataset.state === 'connected' && since > 0) {
    // Clamped: the browser's clock may run behind the server's.
    const s = Math.max(0, Math.floor(Date.now() / 1000 - since));
    const mm = String(Math.floor(s / 60) % 60);
    const ss = String(s % 60).padStart(2, '0');
    text = s >= 3600 ? `${Math.floor(s / 3600)}:${mm.padStart(2, '0')}:${ss}` : `${mm}:${ss}`;
  }
  if (box.textContent !== text) box.textContent = text;
}

function removeTile(identity) {
  tileOf(identity)?.remove();
  session?.meters.delete(identity);
  updateCount();
}

function updateCount() {
  const n = tiles.children.length;
  tiles.dataset.count = String(n); // the layout (demo.css) sizes tiles by how many there are
  $('#room-count').textContent = n === 1 ? 'Just you' : `${n} in the room`;
}

function showVideo(tile, stream) {
  const video = $('video', tile);
  video.srcObject = stream;
  tile.classList.toggle('has-video', Boolean(stream));
}

/** Shows a remote video in its tile, or measures a phone's audio for its level bar. */
function attach(tile, { kind, stream, identity }) {
  if (kind === 'video') showVideo(tile, stream);
  else if (tile.dataset.kind === 'phone') session.meters.set(identity, meterFor(stream));
}

function onTrack({ detail }) {
  const { identity, kind, stream, mid } = detail;
  if (kind === 'audio') {
    const audio = el('audio', { autoplay: true, srcObject: stream });
    audio.dataset.mid = mid;
    audioSink.append(audio);
    audio.play().catch(() => {});
  }
  const tile = tileOf(identity);
  if (tile) attach(tile, detail);
}

function onTrackEnded({ detail }) {
  const { identity, kind, mid } = detail;
  if (kind === 'video') {
    const tile = tileOf(identity);
    if (tile) showVideo(tile, null);
  } else {
    [...audioSink.children].find((a) => a.dataset.mid === mid)?.remove();
    const meter = session?.meters.get(identity);
    if (meter?.analyser) session.meters.set(identity, { level: 0 });
  }
}

function onSpeaking({ detail }) {
  const levels = new Map(detail.speakers.map((s) => [s.identity, s.level]));
  for (const tile of tiles.children) {
    const id = tile.dataset.identity;
    tile.classList.toggle('speaking', levels.has(id));
    const meter = session.meters.get(id) || {};
    meter.speaking = levels.get(id) || 0;
    if (tile.dataset.kind === 'phone') session.meters.set(id, meter);
  }
}

/** A WebAudio level meter on a phone's audio (the server's `speaking` level stands in without it). */
function meterFor(stream) {
  if (!session.audio) return { level: 0 };
  const analyser = session.audio.createAnalyser();
  analyser.fftSize = 512;
  session.audio.createMediaStreamSource(stream).connect(analyser);
  return { analyser, samples: new Float32Array(analyser.fftSize), level: 0 };
}

function meterLevel(meter) {
  if (meter.analyser) {
    meter.analyser.getFloatTimeDomainData(meter.samples);
    let sum = 0;
    for (const s of meter.samples) sum += s * s;
    const dbfs = 10 * Math.log10(sum / meter.samples.length + 1e-12);
    return Math.min(1, Math.max(0, (dbfs + 60) / 55));
  }
  return meter.speaking || 0;
}

function animateLevels() {
  if (!session) return;
  for (const tile of tiles.querySelectorAll('.tile.phone')) {
    const meter = session.meters.get(tile.dataset.identity);
    const target = meter ? meterLevel(meter) : 0;
    const shown = meter ? Math.max(target, (meter.level || 0) * 0.85) : 0;
    if (meter) meter.level = shown;
    tile.style.setProperty('--level', shown.toFixed(3));
    const percent = String(Math.round(shown * 100));
    const bar = $('.level', tile);
    if (bar.getAttribute('aria-valuenow') !== percent) bar.setAttribute('aria-valuenow', percent);
    showCallTime(tile);
  }
  session.frame = requestAnimationFrame(animateLevels);
}

async function hangUp(identity, button) {
  try {
    await busy(button, () => api('DELETE',
      `/v1/rooms/${encodeURIComponent(session.roomName)}/participants/${encodeURIComponent(identity)}`));
  } catch (err) {
    toast(err, 'Could not hang up');
  }
}

async function dial(event) {
  event.preventDefault();
  const box = $('[data-testid="dial-result"]');
  const to = dialable(dialForm.elements.to.value);
  if (!to) {
    dialForm.elements.to.setAttribute('aria-invalid', 'true');
    dialForm.elements.to.focus();
    return;
  }
  dialForm.elements.to.removeAttribute('aria-invalid');
  hideResult(box);
  try {
    const call = await busy(event.submitter || $('[data-testid="dial-button"]'),
      () => api('POST', '/v1/calls', { to, room: { connector: 'builtin', name: session.roomName } }));
    showResult(box, `Calling ${to}${call?.id ? ` (${call.id})` : ''}: the phone joins when answered.`);
    dialForm.reset();
  } catch (err) {
    if (err instanceof ApiProblem && (err.status === 404 || err.status === 405) && !(await placesCalls())) {
      showNotice(box, 'Dialing out arrives with call control',
        'This SIPx does not place calls yet (its API has no POST /v1/calls). Meanwhile phones join '
        + 'the room by calling in, through one of your trunks or SIP accounts.');
    } else {
      showResult(box, err, 'The call could not be placed');
    }
  }
}

/**
 * What the user typed, as the API takes it: a SIP URI as is, a number without the spaces,
 * dashes, dots and brackets people write numbers with.
 * @param {string} typed
 * @returns {string}
 */
function dialable(typed) {
  const t = typed.trim();
  return /^sips?:/i.test(t) ? t : t.replace(/[\s().-]/g, '');
}

/**
 * Whether this server's API places calls (`POST /v1/calls` in its OpenAPI document): a 404 for
 * a missing route and a 404 for, say, a missing trunk look alike otherwise.
 * @returns {Promise<boolean>} `true` when it does, or when the document cannot be read.
 */
async function placesCalls() {
  try {
    const res = await fetch('/openapi.json', { credentials: 'omit', cache: 'no-store' });
    if (!res.ok) return true;
    const doc = await res.json();
    return Boolean(doc?.paths?.['/v1/calls']?.post);
  } catch {
    return true;
  }
}

/** Room-level errors go where the user is looking: under the dial form, beside the tiles. */
function toast(err, context) {
  showResult($('[data-testid="dial-result"]'), err, context);
}

function setMic(muted) {
  session.micMuted = muted;
  session.room.setMuted('audio', muted);
  micButton.setAttribute('aria-pressed', String(muted));
  $('use', micButton).setAttribute('href', muted ? '#i-mic-off' : '#i-mic');
  $('.label', micButton).textContent = muted ? 'Unmute' : 'Mute';
  const self = tileOf(session.room.self.identity);
  if (self) $('.muted-icon', self).toggleAttribute('hidden', !muted);
}

async function setCamera(off) {
  const { room } = session;
  if (!off && !room.localStream.getVideoTracks().length) await room.publish({ video: true });
  else room.setMuted('video', off);
  setCameraButton(off);
  const self = tileOf(room.self.identity);
  if (self) showVideo(self, off || !room.localStream.getVideoTracks().length ? null : room.localStream);
}

/**
 * Joins with the media it can get: camera and microphone, the microphone alone, or nothing.
 * @returns {Promise<{room: SipxRoom, degraded: boolean}>} `degraded` when it got less than asked.
 */
async function joinWithMedia(url, token, camera) {
  const attempts = camera ? [{ audio: true, video: true }, { audio: true }, false] : [{ audio: true }, false];
  for (const [i, publish] of attempts.entries()) {
    try {
      return { room: await SipxRoom.join({ url, token, publish }), degraded: i > 0 };
    } catch (err) {
      const mediaRefused = err instanceof DOMException && publish !== false;
      if (!mediaRefused) throw err;
    }
  }
  throw new Error('unreachable');
}

async function join(event) {
  event.preventDefault();
  const box = $('[data-testid="join-error"]');
  hideResult(box);
  const roomName = joinForm.elements.room.value.trim();
  const name = joinForm.elements.name.value.trim();
  for (const input of [joinForm.elements.room, joinForm.elements.name]) {
    input.setAttribute('aria-invalid', String(!input.checkValidity()));
  }
  if (!joinForm.checkValidity()) {
    joinForm.querySelector('[aria-invalid="true"]')?.focus();
    return;
  }
  localStorage.setItem(STORE_NAME, name);
  // One identity per tab: reloading replaces this tab's old connection, a second tab is someone new.
  let identity = sessionStorage.getItem('sipx.demo.identity');
  if (!identity) sessionStorage.setItem('sipx.demo.identity', (identity = `web-${randomId()}`));
  // Created inside the click, so that the browser lets it play.
  const audio = new AudioContext();
  try {
    await busy(event.submitter || $('[data-testid="join-button"]'), async () => {
      const grant = await api('POST', `/v1/rooms/${encodeURIComponent(roomName)}/tokens`,
        { identity, name, can_publish: true, can_subscribe: true });
      const { room, degraded } = await joinWithMedia(grant.url, grant.token, joinForm.elements.camera.checked);
      enterRoom(room, roomName, audio);
      if (degraded) {
        toast(new ApiProblem(0, { title: 'Joined without some media', detail: 'The browser refused the camera or microphone, or has none.' }));
      }
    });
  } catch (err) {
    audio.close();
    showResult(box, err, err instanceof ApiProblem ? 'Could not get a join token' : 'Could not join the room');
  }
}

function enterRoom(room, roomName, audio) {
  session = { room, roomName, audio, meters: new Map(), micMuted: false, camOff: false, frame: 0 };
  lobby.hidden = true;
  roomView.hidden = false;
  $('#room-title').textContent = room.name || roomName;
  document.title = `${room.name || roomName} · SIPx Rooms`;
  const self = ensureTile(room.self, true);
  const hasVideo = room.localStream.getVideoTracks().length > 0;
  showVideo(self, hasVideo ? room.localStream : null);
  micButton.disabled = room.localStream.getAudioTracks().length === 0;
  setCameraButton(!hasVideo);
  // Tracks first (their audio plays), then the tiles, which pick up their video and levels.
  for (const t of room.tracks) onTrack({ detail: t });
  for (const p of room.participants.values()) ensureTile(p);
  room.addEventListener('participant-joined', (e) => ensureTile(e.detail.participant));
  room.addEventListener('participant-updated', (e) => ensureTile(e.detail.participant));
  // Muted (or unmuted) by the application: the own tile says so too.
  room.addEventListener('self-updated', (e) => ensureTile(e.detail.participant, true));
  room.addEventListener('call-state', (e) => ensureTile(e.detail.participant));
  room.addEventListener('participant-left', (e) => removeTile(e.detail.identity));
  room.addEventListener('track', onTrack);
  room.addEventListener('track-ended', onTrackEnded);
  room.addEventListener('speaking', onSpeaking);
  room.addEventListener('error', (e) => toast(new ApiProblem(0, { title: 'Room error', detail: e.detail.message, type: e.detail.code })));
  room.addEventListener('closed', (e) => exitRoom(e.detail.reason));
  session.frame = requestAnimationFrame(animateLevels);
}

function setCameraButton(off) {
  session.camOff = off;
  camButton.setAttribute('aria-pressed', String(off));
  $('use', camButton).setAttribute('href', off ? '#i-cam-off' : '#i-cam');
  $('.label', camButton).textContent = off ? 'Start video' : 'Stop video';
}

const CLOSE_MESSAGES = {
  replaced: 'You joined this room from another tab or device.',
  removed: 'You were removed from the room.',
  room_closed: 'The room was closed.',
  unauthorized: 'The join token was refused or has expired.',
  forbidden: 'The application is disabled, or the room is full.',
  room_not_found: 'There is no such room.',
  identity_taken: 'A phone in the room already has that name.',
  unavailable: 'The rooms are not available right now.',
  stopping: 'SIPx is stopping. Join again in a moment.',
  failed: 'The media connection failed (a firewall may block UDP).',
  disconnected: 'The connection to SIPx was lost.',
};

function exitRoom(reason) {
  if (!session) return;
  cancelAnimationFrame(session.frame);
  session.audio.close();
  session = null;
  tiles.replaceChildren();
  audioSink.replaceChildren();
  hideResult($('[data-testid="dial-result"]'));
  roomView.hidden = true;
  lobby.hidden = false;
  document.title = 'SIPx Rooms';
  if (reason !== 'left') {
    showResult($('[data-testid="join-error"]'), new ApiProblem(0, {
      title: 'You left the room', detail: CLOSE_MESSAGES[reason] || `The session ended (${reason}).`,
    }));
  }
}

joinForm.addEventListener('submit', join);
dialForm.addEventListener('submit', dial);
micButton.addEventListener('click', () => setMic(!session.micMuted));
camButton.addEventListener('click', () => setCamera(!session.camOff).catch(toast));
$('#leave-button').addEventListener('click', () => session?.room.leave());
// Closing the tab leaves at once, rather than when the server notices the silence.
addEventListener('pagehide', () => session?.room.leave());

// ---- start -------------------------------------------------------------------------------

joinForm.elements.name.value = localStorage.getItem(STORE_NAME) || '';
const roomParam = new URLSearchParams(location.search).get('room');
if (roomParam) joinForm.elements.room.value = roomParam;
credentialsFromFragment();
checkCredentials().catch(() => {});
