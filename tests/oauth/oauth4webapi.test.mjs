// oauth4webapi, unchanged, against Bridle: RFC 8414 discovery, client
// credentials, RFC 8693 token exchange, RFC 7662 introspection, RFC 7009
// revocation, and RFC 9449 DPoP at the token endpoint and at /v1/decisions.
//
//   BRIDLE_URL=http://127.0.0.1:PORT BRIDLE_ADMIN_KEY=bk_... \
//     node --test tests/oauth/oauth4webapi.test.mjs
//
// The server listens on plain HTTP on loopback, so every call passes
// `allowInsecureRequests`, the library's switch for exactly that.

import assert from 'node:assert/strict'
import { createHash, randomUUID } from 'node:crypto'
import { before, describe, test } from 'node:test'

import * as oauth from 'oauth4webapi'

const issuer = (process.env.BRIDLE_URL ?? '').replace(/\/+$/, '')
const adminKey = process.env.BRIDLE_ADMIN_KEY
if (!issuer || !adminKey) {
  throw new Error('BRIDLE_URL and BRIDLE_ADMIN_KEY must be set: run these tests through scripts/interop.sh')
}

const insecure = { [oauth.allowInsecureRequests]: true }
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'

async function admin(method, path, body, contentType = 'application/json') {
  const response = await fetch(`${issuer}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminKey}`, 'content-type': contentType },
    body: body === undefined ? undefined : contentType === 'application/json' ? JSON.stringify(body) : body,
  })
  const text = await response.text()
  assert.ok(response.ok, `${method} ${path}: ${response.status} ${text}`)
  return JSON.parse(text)
}

/** A fresh client secret for `agent`: [client, secret]. */
async function newSecret(agent) {
  const body = await admin('POST', `/v1/agents/${agent}/credentials`, {})
  return [{ client_id: body.client_id }, body.client_secret]
}

/** A throwaway agent (owner alice) granted `interop.ping`. */
async function newAgent(prefix, extraYaml = '') {
  const agent = `${prefix}-${randomUUID().slice(0, 8)}`
  const manifest = [
    `agent: ${agent}`,
    'owner: alice',
    'purpose: OAuth interoperability test client',
    'environment: dev',
    'expires: 2099-12-31',
    'tools:',
    '  - name: interop.ping',
    extraYaml,
  ].join('\n')
  await admin('PUT', `/v1/agents/${agent}`, manifest, 'application/yaml')
  return agent
}

function claimsOf(jwt) {
  const [header, payload] = jwt.split('.').slice(0, 2).map((part) => JSON.parse(Buffer.from(part, 'base64url')))
  return { header, claims: payload }
}

/** RFC 7638 thumbprint of a public key. */
async function thumbprint(publicKey) {
  const jwk = await crypto.subtle.exportKey('jwk', publicKey)
  const members = { EC: ['crv', 'kty', 'x', 'y'], OKP: ['crv', 'kty', 'x'], RSA: ['e', 'kty', 'n'] }[jwk.kty]
  const canonical = JSON.stringify(Object.fromEntries(members.map((m) => [m, jwk[m]])))
  return createHash('sha256').update(canonical).digest('base64url')
}

/** A decision request made the way a resource client makes it. */
function decide(accessToken, action, options = {}) {
  return oauth.protectedResourceRequest(
    accessToken,
    'POST',
    new URL(`${issuer}/v1/decisions`),
    new Headers({ 'content-type': 'application/json' }),
    JSON.stringify({ action, args: {} }),
    { ...insecure, ...options },
  )
}

/** The HTTP status a protected resource request ended with: oauth4webapi
 * rejects responses that carry a WWW-Authenticate challenge. */
async function statusOf(request) {
  try {
    return (await request).status
  } catch (err) {
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      return err.status
    }
    throw err
  }
}

/** The OAuth `error` code a token endpoint request was refused with. */
async function oauthErrorOf(process) {
  try {
    await process
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) {
      return { status: err.status, error: err.error }
    }
    if (err instanceof oauth.WWWAuthenticateChallengeError) {
      const body = await err.response.json()
      return { status: err.status, error: body.error, challenges: err.cause }
    }
    throw err
  }
  assert.fail('the request succeeded')
}

let as

before(async () => {
  const response = await oauth.discoveryRequest(new URL(issuer), { algorithm: 'oauth2', ...insecure })
  as = await oauth.processDiscoveryResponse(new URL(issuer), response)
})

async function clientCredentials(client, auth, parameters = {}, options = {}) {
  const response = await oauth.clientCredentialsGrantRequest(as, client, auth, parameters, { ...insecure, ...options })
  return oauth.processClientCredentialsResponse(as, client, response).catch(withBody)
}

/** Puts the server's error body into the message of an oauth4webapi error
 * that carries a response (a challenge error's message alone says little). */
async function withBody(err) {
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    err.message += ` (HTTP ${err.status}: ${await err.response.clone().text()})`
  }
  throw err
}

test('discovery (RFC 8414)', () => {
  assert.equal(as.issuer, issuer)
  assert.equal(as.token_endpoint, `${issuer}/oauth/token`)
  assert.equal(as.introspection_endpoint, `${issuer}/oauth/introspect`)
  assert.equal(as.revocation_endpoint, `${issuer}/oauth/revoke`)
  assert.equal(as.jwks_uri, `${issuer}/.well-known/jwks.json`)
  assert.ok(as.grant_types_supported.includes('client_credentials'))
  assert.ok(as.grant_types_supported.includes(TOKEN_EXCHANGE))
  assert.ok(as.dpop_signing_alg_values_supported.includes('ES256'))
})

describe('client credentials', () => {
  for (const [name, auth] of [
    ['client_secret_basic', oauth.ClientSecretBasic],
    ['client_secret_post', oauth.ClientSecretPost],
  ]) {
    test(name, async () => {
      const [client, secret] = await newSecret('procurement-bot')
      const token = await clientCredentials(client, auth(secret), { scope: 'procurement.list_vendors' })
      assert.equal(token.token_type, 'bearer')
      assert.equal(token.scope, 'procurement.list_vendors')
      assert.ok(token.expires_in > 0)
      const { header, claims } = claimsOf(token.access_token)
      assert.equal(header.typ, 'at+jwt')
      assert.equal(claims.sub, 'procurement-bot')
      assert.equal(claims.client_id, client.client_id)

      const response = await decide(token.access_token, 'procurement.list_vendors')
      assert.equal(response.status, 200)
      assert.equal((await response.json()).decision, 'allow')
    })
  }

  test('a wrong secret is invalid_client (401)', async () => {
    const [client] = await newSecret('procurement-bot')
    const refused = await oauthErrorOf(clientCredentials(client, oauth.ClientSecretBasic('bcs_not-the-secret')))
    assert.equal(refused.status, 401)
    assert.equal(refused.error, 'invalid_client')
  })
})

describe('private_key_jwt (RFC 7523)', () => {
  for (const alg of ['ES256', 'EdDSA']) {
    test(`an ${alg} key registered through the credentials API`, async () => {
      const keyPair = await oauth.generateKeyPair(alg)
      const jwk = await crypto.subtle.exportKey('jwk', keyPair.publicKey)
      const registered = await admin('POST', '/v1/agents/research-bot/credentials', {
        jwk: { kty: jwk.kty, crv: jwk.crv, x: jwk.x, y: jwk.y },
      })
      assert.equal(registered.token_endpoint_auth_method, 'private_key_jwt')
      assert.equal(registered.jwk_thumbprint, await thumbprint(keyPair.publicKey))

      const client = { client_id: registered.client_id }
      const token = await clientCredentials(client, oauth.PrivateKeyJwt(keyPair.privateKey))
      const { claims } = claimsOf(token.access_token)
      assert.equal(claims.sub, 'research-bot')
      assert.equal(claims.client_id, client.client_id)
    })
  }
})

describe('token exchange (RFC 8693)', () => {
  test('test-runner acting for swe-bot', async () => {
    const [swe, sweSecret] = await newSecret('swe-bot')
    const subject = await clientCredentials(swe, oauth.ClientSecretBasic(sweSecret))
    const [runner, runnerSecret] = await newSecret('test-runner')

    const response = await oauth.genericTokenEndpointRequest(
      as,
      runner,
      oauth.ClientSecretBasic(runnerSecret),
      TOKEN_EXCHANGE,
      { subject_token: subject.access_token, subject_token_type: ACCESS_TOKEN_TYPE },
      insecure,
    )
    const token = await oauth.processGenericTokenEndpointResponse(as, runner, response).catch(withBody)
    assert.equal(token.issued_token_type, ACCESS_TOKEN_TYPE)
    assert.equal(token.token_type, 'bearer')
    const { claims } = claimsOf(token.access_token)
    assert.equal(claims.sub, 'swe-bot')
    assert.deepEqual(claims.act, { sub: 'test-runner' })
    assert.ok(claims.exp <= claimsOf(subject.access_token).claims.exp)

    const allowed = await decide(token.access_token, 'ci.run_tests')
    assert.equal(allowed.status, 200)
    assert.equal((await allowed.json()).decision, 'allow')
  })

  test('a delegate its delegator does not name is invalid_target', async () => {
    const [procurement, secret] = await newSecret('procurement-bot')
    const subject = await clientCredentials(procurement, oauth.ClientSecretBasic(secret))
    const [runner, runnerSecret] = await newSecret('test-runner')
    const response = await oauth.genericTokenEndpointRequest(
      as,
      runner,
      oauth.ClientSecretPost(runnerSecret),
      TOKEN_EXCHANGE,
      { subject_token: subject.access_token, subject_token_type: ACCESS_TOKEN_TYPE },
      insecure,
    )
    const refused = await oauthErrorOf(oauth.processGenericTokenEndpointResponse(as, runner, response))
    assert.equal(refused.status, 400)
    assert.equal(refused.error, 'invalid_target')
  })
})

describe('introspection (RFC 7662) and revocation (RFC 7009)', () => {
  test('a revoked token is inactive and refused at /v1/decisions', async () => {
    const [client, secret] = await newSecret('procurement-bot')
    const auth = oauth.ClientSecretBasic(secret)
    const token = await clientCredentials(client, auth)

    const introspect = async () =>
      oauth.processIntrospectionResponse(
        as,
        client,
        await oauth.introspectionRequest(as, client, auth, token.access_token, insecure),
      )

    const active = await introspect()
    const { claims } = claimsOf(token.access_token)
    assert.equal(active.active, true)
    assert.equal(active.sub, 'procurement-bot')
    assert.equal(active.client_id, client.client_id)
    assert.equal(active.jti, claims.jti)
    assert.equal(active.exp, claims.exp)
    assert.equal(active.iss, issuer)

    assert.equal((await decide(token.access_token, 'procurement.list_vendors')).status, 200)

    const revoked = await oauth.revocationRequest(as, client, auth, token.access_token, insecure)
    assert.equal(await oauth.processRevocationResponse(revoked), undefined)

    assert.deepEqual({ ...(await introspect()) }, { active: false })
    assert.equal(await statusOf(decide(token.access_token, 'procurement.list_vendors')), 401)
  })
})

describe('DPoP (RFC 9449)', () => {
  let agent, client, auth

  before(async () => {
    agent = await newAgent('interop-dpop', 'credentials: { dpop: required }')
    let secret
    ;[client, secret] = await newSecret(agent)
    auth = oauth.ClientSecretBasic(secret)
  })

  for (const alg of ['ES256', 'EdDSA']) {
    test(`an ${alg}-bound token works only with its proofs`, async () => {
      const keyPair = await oauth.generateKeyPair(alg)
      const dpop = oauth.DPoP(client, keyPair)

      const token = await clientCredentials(client, auth, {}, { DPoP: dpop })
      assert.equal(token.token_type, 'dpop')
      const { claims } = claimsOf(token.access_token)
      assert.equal(claims.sub, agent)
      assert.equal(claims.cnf?.jkt, await thumbprint(keyPair.publicKey))

      const introspected = await oauth.processIntrospectionResponse(
        as,
        client,
        await oauth.introspectionRequest(as, client, auth, token.access_token, insecure),
      )
      assert.equal(introspected.active, true)
      assert.equal(introspected.cnf?.jkt, claims.cnf.jkt)

      const response = await decide(token.access_token, 'interop.ping', { DPoP: dpop })
      assert.equal(response.status, 200)
      const decision = await response.json()
      assert.equal(decision.decision, 'allow')
      assert.deepEqual(
        decision.reasons.map((r) => r.code),
        ['granted'],
      )

      // The same token as a plain bearer token, or with another key's proof.
      assert.equal(await statusOf(decide(token.access_token, 'interop.ping')), 401)
      const thief = oauth.DPoP(client, await oauth.generateKeyPair(alg))
      assert.equal(await statusOf(decide(token.access_token, 'interop.ping', { DPoP: thief })), 401)
    })
  }

  test('without a proof the token request is invalid_dpop_proof', async () => {
    const refused = await oauthErrorOf(clientCredentials(client, auth))
    assert.equal(refused.status, 400)
    assert.equal(refused.error, 'invalid_dpop_proof')
  })
})
