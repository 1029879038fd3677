// modesl (npm) against the fake switch, as its users drive it.
// node modesl_client.js HOST PORT PASSWORD B_LEG JOB_UUID INBOUND_HANGUPS B_EVENTS
// prints one JSON line of results, waits for a line on stdin (the test then
// drops every connection), prints a second JSON line. Every wait is bounded.
'use strict';
const esl = require('modesl');
const readline = require('readline');

const [host, port, password, bLeg, jobUuid, inboundHangups, bEvents] = process.argv.slice(2);
const WAIT_MS = 5000;
const MYEVENTS = ('CHANNEL_ANSWER CHANNEL_APPLICATION CHANNEL_BRIDGE CHANNEL_CREATE CHANNEL_DATA ' +
  'CHANNEL_DESTROY CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HANGUP ' +
  'CHANNEL_HANGUP_COMPLETE CHANNEL_ORIGINATE CHANNEL_UUID CHANNEL_OUTGOING CHANNEL_PARK ' +
  'CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_STATE CHANNEL_UNBRIDGE CHANNEL_UNPARK').split(' ');

setTimeout(() => { console.error('modesl_client.js: overall timeout'); process.exit(3); }, 4 * WAIT_MS);

function until(predicate) {
  return new Promise((resolve) => {
    const start = Date.now();
    const tick = () => {
      if (predicate()) return resolve(true);
      if (Date.now() - start > WAIT_MS) return resolve(false);
      setTimeout(tick, 10);
    };
    tick();
  });
}

function bounded(start) {  // a callback-style call, or null after WAIT_MS
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), WAIT_MS);
    start((value) => { clearTimeout(timer); resolve(value); });
  });
}

function connect(secret) {
  return bounded((done) => {
    const conn = new esl.Connection(host, Number(port), secret);
    conn.on('esl::event::auth::success', () => done({ conn, ok: true }));
    conn.on('esl::event::auth::fail', () => done({ conn, ok: false }));
    conn.on('error', (err) => done({ conn, ok: false, error: String(err) }));
  });
}

function headers(event) {
  const out = {};
  event.headers.forEach((h) => { out[h.name] = h.value; });
  out._body = event.getBody();
  return out;
}

const reply = (event) => (event ? event.getHeader('Reply-Text') : null);
const send = (conn, command) => bounded((done) => conn.sendRecv(command, done)).then(reply);

async function main() {
  const out = {};
  const bad = await connect('wrong');
  out.bad_password = bad && !bad.ok ? 'refused' : 'accepted';

  const { conn } = await connect(password);
  const { conn: mine } = await connect(password);
  const hangups = []; const customs = []; const session = [];
  let connEnded = false; let mineEnded = false;
  conn.on('esl::end', () => { connEnded = true; });
  mine.on('esl::end', () => { mineEnded = true; });
  conn.on('error', () => {});
  mine.on('error', () => {});
  conn.on('esl::event::CHANNEL_HANGUP_COMPLETE::*', (e) => hangups.push(headers(e)));
  conn.on('esl::event::CUSTOM::*', (e) => customs.push(headers(e)));
  MYEVENTS.forEach((name) => mine.on('esl::event::' + name + '::*', (e) => session.push(headers(e))));

  // modesl already sent "event json BACKGROUND_JOB CHANNEL_EXECUTE_COMPLETE" on auth
  out.subscribe = reply(await bounded((done) =>
    conn.subscribe(['CHANNEL_HANGUP_COMPLETE', 'CUSTOM', 'fake::compat'], done)));
  out.filter = reply(await bounded((done) => conn.filter('Call-Direction', 'inbound', done)));
  out.myevents = await send(mine, 'myevents ' + bLeg);
  await until(() => hangups.length >= Number(inboundHangups) && session.length >= Number(bEvents));
  out.hangups = hangups;
  out.session_ids = [...new Set(session.map((e) => e['Unique-ID']))].sort();
  out.session_count = session.length;

  out.filter_delete = reply(await bounded((done) => conn.filterDelete('Call-Direction', 'inbound', done)));
  const job = await bounded((done) => conn.bgapi('status', '', jobUuid, done));
  out.job_event_uuid = job ? job.getHeader('Job-UUID') : null;
  out.job_body_starts = job ? job.getBody().slice(0, 3) : null;

  const event = new esl.Event('CUSTOM', 'fake::compat');
  event.addHeader('Compat-Header', 'yes');
  out.sendevent = reply(await bounded((done) => mine.sendEvent(event, done)));
  await until(() => customs.length > 0);
  out.custom = customs[0] || null;

  const made = await bounded((done) => conn.api('originate',
    ['sofia/internal/1000@127.0.0.1:5080', '&park()'], done));
  out.originate = made ? made.getBody() : null;
  const uuid = out.originate ? out.originate.split(' ')[1].trim() : '';
  const executed = await bounded((done) => conn.execute('playback', 'silence_stream://100', uuid, done));
  out.execute = executed ? { uuid: executed.getHeader('Unique-ID'),
    app: executed.getHeader('Application') } : null;
  const dump = await bounded((done) => conn.api('uuid_dump', uuid, done));
  out.dump_unique_id = dump ? (/^Unique-ID: (.*)$/m.exec(dump.getBody()) || [])[1] : null;
  const killed = await bounded((done) => conn.api('uuid_kill', uuid, done));
  out.kill = killed ? killed.getBody() : null;

  mine.disconnect();  // exit
  out.mine_ended = await until(() => mineEnded);
  console.log(JSON.stringify(out));

  const lines = readline.createInterface({ input: process.stdin });
  await bounded((done) => lines.once('line', done));
  lines.close();
  const noticed = await until(() => connEnded);
  console.log(JSON.stringify({ noticed }));
  process.exit(0);
}

main().catch((err) => { console.error(err && err.stack || err); process.exit(2); });
