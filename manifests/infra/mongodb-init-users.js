// One MongoDB user per service (and one for the operator commands, `ops`; `backup`, which only
// reads, for the nightly backup; `restore`, which writes, for the restore Job run by hand), each
// holding one role with only the actions its code performs.
// Run by mongosh as the root user (Job mongodb-init-users; the compose service of the same name).
// Safe to run again: existing roles and users are brought back to what is written here, and each
// user's password is set to the one in its service's Secret.
//
// Environment: MONGO_INITDB_ROOT_USERNAME / MONGO_INITDB_ROOT_PASSWORD (to log in),
// MONGODB_DB (the database holding everything: `jobs`, the GridFS buckets, `rate_limits`), and
// for each user below MONGODB_<USER>_PASSWORD (the password in that user's MONGODB_URI).

const DB = process.env.MONGODB_DB;
// the GridFS buckets inside DB (common/store.py: VIDEOS, MP3S), each two collections
const VIDEOS = [DB, ["videos.files", "videos.chunks"]];
const MP3S = [DB, ["mp3s.files", "mp3s.chunks"]];
// each bucket's file documents apart from its chunks, for who changes a file's metadata
const VIDEO_DOCS = [DB, ["videos.files"]];
const VIDEO_CHUNKS = [DB, ["videos.chunks"]];
const MP3_DOCS = [DB, ["mp3s.files"]];
const MP3_CHUNKS = [DB, ["mp3s.chunks"]];
const JOBS = [DB, ["jobs"]];
// the gateway's rate-limit counters (gateway/ratelimit_storage.py; it makes their TTL index)
const RATE_LIMITS = [DB, ["rate_limits"]];
// uploads being received, counted against their owner's quotas (common/jobs.py: UPLOADS)
const UPLOADS = [DB, ["uploads"]];
// each owner's usage, changed by every transition of their jobs (common/usage.py; `$inc` with
// upsert: an owner with none gets one), read for the quotas, reconciled by the sweep
const USAGE = [DB, ["usage"]];
// resumable uploads not yet finished: their offset, checksum state and partial last chunk
// (common/resumable.py; their bytes are chunks of `videos.chunks` already)
const RESUMABLE = [DB, ["resumable_uploads"]];
// webhook endpoints, every delivery attempt, and the deliveries that succeeded (common/webhooks.py)
const WEBHOOKS = [DB, ["webhooks", "webhook_deliveries"]];
const WEBHOOKS_SENT = [DB, ["webhook_sent"]];
// the operator commands' leases: one sweep at a time (src/ops/lease.py)
const LEASES = [DB, ["leases"]];
// every collection of DB, present and future (a resource whose collection is ""): what a backup
// copies and a restore brings back
const EVERY_COLLECTION = [DB, [""]];
// the scratch database each backup set is trial-restored into to verify it, then dropped
// (`python -m ops backup --verify`; MongoDB grants on whole names only, so it has a fixed one)
const VERIFY_SCRATCH = [`${DB}_verify`, [""]];

// find also covers counting, distinct and aggregate, and every find-and-modify needs it;
// inserting may create the collection on first use, hence createCollection beside insert
const FIND = ["find"];
const FIND_UPDATE = ["find", "update"];
const FIND_UPDATE_REMOVE = ["find", "update", "remove"];
const FIND_REMOVE = ["find", "remove"];
const INSERT_REMOVE = ["insert", "remove", "createCollection"];
const FIND_INSERT_REMOVE = ["find", "insert", "remove", "createCollection"];
const WRITE = ["find", "insert", "update", "remove", "createCollection"];
// a service creates, at its start, the indexes of the collections it queries (src/common/
// indexes.py; a no-op once they exist); `ops migrate` builds them first on an upgrade
const INDEX = ["createIndex"];
// a backup lists the collections and their indexes and reads every document; a restore also
// empties or drops a collection, refills it and rebuilds its indexes
const READ_ALL = ["find", "listCollections", "listIndexes"];
const RESTORE = [...READ_ALL, "insert", "update", "remove", "createCollection", "dropCollection",
                 "createIndex"];
const TRIAL_RESTORE = [...READ_ALL, "insert", "createCollection", "dropCollection", "createIndex",
                       "dropDatabase"];

// user -> [[database, collections], actions]; the user and its role share the name. Only
// common/jobs.py writes `jobs`; each user gets what the lifecycle steps its code calls do.
const SERVICES = {
  // records uploads as jobs and dispatches them, stores videos (removing an interrupted one),
  // serves MP3s, deletes a job or a whole account with their files, counts usage for quotas
  gateway: [
    [JOBS, [...WRITE, ...INDEX]],
    [VIDEOS, [...FIND_INSERT_REMOVE, ...INDEX]],
    [MP3S, [...FIND_REMOVE, ...INDEX]],
    [RATE_LIMITS, [...WRITE, ...INDEX]],
    [UPLOADS, [...WRITE, ...INDEX]],
    [USAGE, WRITE],  // made from the jobs when missing, gone with the account
    [RESUMABLE, [...WRITE, ...INDEX]],  // resumable uploads (tus) being received
    // registers, lists and deletes webhook endpoints (with their deliveries)
    [WEBHOOKS, [...WRITE, ...INDEX]],
  ],
  // claims, updates and finishes jobs and dispatches the owner's next, reads the video and
  // removes it once the job is final, stores the MP3 (removing it if the job went meanwhile)
  converter: [
    [JOBS, [...FIND_UPDATE, ...INDEX]],
    [VIDEOS, [...FIND_REMOVE, ...INDEX]],
    [MP3S, [...INSERT_REMOVE, ...INDEX]],
    [USAGE, ["insert", "update", "createCollection"]],  // each transition's count (an upsert)
  ],
  // reads the job and records what became of its email (by _id alone: no index of its own);
  // reads webhook endpoints, counts their failures, records each attempt (keeping the newest)
  // and each success
  notification: [
    [JOBS, FIND_UPDATE],
    [WEBHOOKS, WRITE],
    [WEBHOOKS_SENT, ["find", "insert", "createCollection"]],
  ],
  // the operator commands (src/ops; the sweep CronJob): re-publish and re-queue jobs, expire
  // MP3s, delete orphaned files and the jobs and files of deleted accounts, hand jobs and
  // files owned by an address (an earlier release) to its account, redrive dead letters, list
  // usage; a sweep takes, renews and gives up its lease; `migrate` stores the cover pictures
  // earlier releases kept only inside the MP3s as files of their own (common/covers.py) and
  // builds the indexes (the sweep makes any missing)
  ops: [
    [JOBS, [...FIND_UPDATE_REMOVE, ...INDEX]],
    [VIDEO_DOCS, [...FIND_UPDATE_REMOVE, ...INDEX]],
    [VIDEO_CHUNKS, [...FIND_REMOVE, ...INDEX]],
    [MP3_DOCS, [...FIND_UPDATE_REMOVE, "insert", "createCollection", ...INDEX]],
    [MP3_CHUNKS, [...FIND_INSERT_REMOVE, ...INDEX]],
    [UPLOADS, [...FIND_REMOVE, ...INDEX]],
    [USAGE, WRITE],  // each transition's count; reconciled with the jobs
    [LEASES, WRITE],
    [WEBHOOKS, [...FIND_REMOVE, ...INDEX]],  // the webhooks of deleted accounts
    [RESUMABLE, [...FIND_REMOVE, ...INDEX]],  // expired unfinished uploads, deleted accounts
    [WEBHOOKS_SENT, [...FIND_REMOVE, ...INDEX]],  // successes remembered long enough
  ],
  // `python -m ops backup --verify` (the backup CronJob): reads everything and changes nothing
  // of it; writes only its scratch database
  backup: [
    [EVERY_COLLECTION, READ_ALL],
    [VERIFY_SCRATCH, TRIAL_RESTORE],
  ],
  // `python -m ops restore` (the restore Job, run by hand with the services stopped)
  restore: [
    [EVERY_COLLECTION, RESTORE],
  ],
};

function privileges(grants) {
  return grants.flatMap(([[database, collections], actions]) =>
    collections.map((collection) => ({ resource: { db: database, collection }, actions })));
}

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`environment variable ${name} is required but not set`);
  return value;
}

required("MONGODB_DB");
const admin = db.getSiblingDB("admin");
admin.auth(required("MONGO_INITDB_ROOT_USERNAME"), required("MONGO_INITDB_ROOT_PASSWORD"));

for (const [service, grants] of Object.entries(SERVICES)) {
  const role = { privileges: privileges(grants), roles: [] };
  if (admin.getRole(service)) {
    admin.updateRole(service, role);
  } else {
    admin.createRole({ role: service, ...role });
  }
  const user = {
    pwd: required(`MONGODB_${service.toUpperCase()}_PASSWORD`),
    roles: [{ role: service, db: "admin" }],
  };
  if (admin.getUser(service)) {
    admin.updateUser(service, user);
    print(`updated user ${service} and its role`);
  } else {
    admin.createUser({ user: service, ...user });
    print(`created user ${service} and its role`);
  }
}
