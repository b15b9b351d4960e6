// Runs a mongosh script under Node against a stand-in for the part of mongosh's `db` it uses.
// No MongoDB with access control runs on the test machines (nx-27017 has no users), so this
// stand-in mirrors what MongoDB does for these calls: it refuses work before db.auth() succeeds,
// refuses to create a role or user that exists or to update one that does not, refuses unknown
// privilege actions and roles, and keeps roles and users between runs in a JSON state file.
//
// usage: node mongosh_standin.js SCRIPT STATE_JSON   (root login in STANDIN_ROOT_USER/_PASSWORD)
"use strict";
const fs = require("fs");
const vm = require("vm");

// https://www.mongodb.com/docs/v7.0/reference/privilege-actions/ (the query, write and database
// management actions; enough to reject a typo)
const ACTIONS = new Set([
  "find", "insert", "remove", "update", "bypassDocumentValidation", "useUUID",
  "changeCustomData", "changeOwnCustomData", "changeOwnPassword", "changePassword",
  "createCollection", "createIndex", "createRole", "createUser", "dropCollection", "dropRole",
  "dropUser", "enableProfiler", "grantRole", "killCursors", "killAnyCursor", "revokeRole",
  "setAuthenticationRestriction", "unlock", "viewRole", "viewUser", "collMod", "compact",
  "convertToCapped", "dropDatabase", "dropIndex", "reIndex", "renameCollectionSameDB",
  "listCollections", "listIndexes", "collStats", "dbStats", "dbHash",
]);
const BUILTIN_ROLES = new Set(["read", "readWrite", "dbAdmin", "dbOwner", "userAdmin", "root",
  "readAnyDatabase", "readWriteAnyDatabase", "userAdminAnyDatabase", "dbAdminAnyDatabase",
  "clusterAdmin", "backup", "restore", "__system"]);

const [scriptPath, statePath] = process.argv.slice(2);
const state = fs.existsSync(statePath)
  ? JSON.parse(fs.readFileSync(statePath, "utf8"))
  : { roles: {}, users: {}, log: [] };
const output = [];
let authenticated = false;

function fail(message) {
  throw new Error(`MongoServerError: ${message}`);
}

function checkPrivileges(privileges) {
  if (!Array.isArray(privileges)) fail("privileges must be an array");
  for (const { resource, actions, ...rest } of privileges) {
    if (Object.keys(rest).length) fail(`unknown privilege fields ${Object.keys(rest)}`);
    if (typeof resource?.db !== "string" || typeof resource?.collection !== "string") {
      fail(`a resource needs string db and collection: ${JSON.stringify(resource)}`);
    }
    if (!Array.isArray(actions) || !actions.length) fail("a privilege needs actions");
    for (const action of actions) {
      if (!ACTIONS.has(action)) fail(`Unrecognized action privilege string: ${action}`);
    }
  }
}

function checkRoles(roles) {
  for (const { role, db } of roles) {
    const known = db === "admin" ? state.roles[role] || BUILTIN_ROLES.has(role) : BUILTIN_ROLES.has(role);
    if (!known) fail(`Could not find role: ${role}@${db}`);
  }
}

function database(name) {
  const guard = () => {
    if (!authenticated) fail("command requires authentication");
    if (name !== "admin") fail(`this stand-in keeps users and roles in admin only, not ${name}`);
  };
  return {
    getSiblingDB: (other) => database(other),
    auth(user, pwd) {
      if (user !== process.env.STANDIN_ROOT_USER || pwd !== process.env.STANDIN_ROOT_PASSWORD) {
        fail("Authentication failed.");
      }
      authenticated = true;
      return { ok: 1 };
    },
    getRole(role) { guard(); return state.roles[role] ? { role, db: name } : null; },
    createRole({ role, privileges, roles, ...rest }) {
      guard();
      if (Object.keys(rest).length) fail(`unknown createRole fields ${Object.keys(rest)}`);
      if (state.roles[role]) fail(`Role "${role}@admin" already exists`);
      checkPrivileges(privileges); checkRoles(roles);
      state.roles[role] = { privileges, roles };
      state.log.push(`createRole ${role}`);
    },
    updateRole(role, { privileges, roles, ...rest }) {
      guard();
      if (Object.keys(rest).length) fail(`unknown updateRole fields ${Object.keys(rest)}`);
      if (!state.roles[role]) fail(`Role ${role}@admin not found`);
      checkPrivileges(privileges); checkRoles(roles);
      state.roles[role] = { privileges, roles };
      state.log.push(`updateRole ${role}`);
    },
    getUser(user) { guard(); return state.users[user] ? { user, db: name } : null; },
    createUser({ user, pwd, roles, ...rest }) {
      guard();
      if (Object.keys(rest).length) fail(`unknown createUser fields ${Object.keys(rest)}`);
      if (state.users[user]) fail(`User "${user}@admin" already exists`);
      if (typeof pwd !== "string" || !pwd) fail("a password is required");
      checkRoles(roles);
      state.users[user] = { pwd, roles };
      state.log.push(`createUser ${user}`);
    },
    updateUser(user, { pwd, roles, ...rest }) {
      guard();
      if (Object.keys(rest).length) fail(`unknown updateUser fields ${Object.keys(rest)}`);
      if (!state.users[user]) fail(`User ${user}@admin not found`);
      if (typeof pwd !== "string" || !pwd) fail("a password is required");
      checkRoles(roles);
      state.users[user] = { pwd, roles };
      state.log.push(`updateUser ${user}`);
    },
  };
}

const sandbox = {
  db: database("admin"),
  process: { env: { ...process.env } },
  print: (...args) => output.push(args.join(" ")),
};
vm.runInNewContext(fs.readFileSync(scriptPath, "utf8"), sandbox, { filename: scriptPath });
fs.writeFileSync(statePath, JSON.stringify(state));
process.stdout.write(output.join("\n") + "\n");
