import { execFileSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { javaUrlEncode } from '../../../test/support/cloudstack-server.js';
import { commandString, encodeValue, expiresAt, signature, signedBody, UnsignableParameterError } from './signing.js';

/** The example of CloudStack's Developer's Guide, "How to sign an API call with Python". */
const GUIDE = {
  apikey: 'plgWJfZK4gyS3mOMTVmjUVg-X-jlWlnfaUJ9GAbBbf9EdM-kAYMmAiLqzzq1ElZLYq_u38zCm0bewzGUdP66mg',
  secretkey: 'VDaACYb0LV9eNjTetIOElcVQkvJck_J_QljX_FcHRj87ZKiy0z0ty0ZsYBkoXkY9b7eq1EhwJaw7FF3akA3KBQ',
  signed: 'apikey=plgwjfzk4gys3momtvmjuvg-x-jlwlnfauj9gabbbf9edm-kaymmailqzzq1elzlyq_u38zcm0bewzgudp66mg&command=listusers&response=json',
  signature: 'TTpdDq/7j/J58XCRHomKoQXEQds=',
};


/** The server side written out independently: sort, encode, join, lower-case, HMAC-SHA1, base64. */
function independentSignature(params: Record<string, string>, secret: string): string {
  const names = Object.keys(params).sort();
  const unsigned = names.map((n) => `${n}=${javaUrlEncode(params[n]!).replaceAll('+', '%20')}`).join('&').toLowerCase();
  return createHmac('sha1', secret).update(unsigned).digest('base64');
}

function opensslSignature(text: string, secret: string): string {
  return execFileSync('openssl', ['dgst', '-sha1', '-hmac', secret, '-binary'], { input: text }).toString('base64');
}

describe('CloudStack request signing', () => {
  it("matches the documented example of CloudStack's developer guide", () => {
    const params = { command: 'listUsers', response: 'json', apikey: GUIDE.apikey };
    expect(commandString(params).toLowerCase()).toBe(GUIDE.signed);
    expect(signature(params, GUIDE.secretkey)).toBe(GUIDE.signature);
    // The signature is sent URL-encoded, as in the guide's final URL.
    expect(signedBody(params, GUIDE.secretkey)).toBe(`apikey=${GUIDE.apikey}&command=listUsers&response=json&signature=TTpdDq%2F7j%2FJ58XCRHomKoQXEQds%3D`);
  });

  it("sorts and lower-cases like the API guide's deployVirtualMachine example", () => {
    const params = {
      command: 'deployVirtualMachine',
      serviceofferingid: '1',
      diskofferingid: '1',
      templateid: '2',
      zoneid: '4',
      apikey: 'miVr6X7u6bN_sdahOBpjNejPgEsT35eXq-jB8CG20YI3yaxXcgpyuaIRmFI_EJTVwZ0nUkkJbPmY3y2bciKwFQ',
    };
    expect(commandString(params).toLowerCase()).toBe(
      'apikey=mivr6x7u6bn_sdahobpjnejpgest35exq-jb8cg20yi3yaxxcgpyuairmfi_ejtvwz0nukkjbpmy3y2bcikwfq&command=deployvirtualmachine&diskofferingid=1&serviceofferingid=1&templateid=2&zoneid=4',
    );
  });

  it('agrees with openssl on the documented example', () => {
    expect(opensslSignature(GUIDE.signed, GUIDE.secretkey)).toBe(GUIDE.signature);
  });

  it('encodes values exactly like Java URLEncoder with spaces as %20', () => {
    const hostile = `a b*c!~'()+/=&?%é😀 "<>#[]{}|\\^\``;
    expect(encodeValue(hostile)).toBe(javaUrlEncode(hostile).replaceAll('+', '%20'));
    expect(encodeValue("a b*c!~'()")).toBe('a%20b*c%21%7E%27%28%29');
  });

  it('agrees with an independent implementation and openssl on hostile values', () => {
    const secret = 'S3cr3t-Key_with~chars!';
    const params = {
      command: 'listVirtualMachines',
      response: 'json',
      apikey: 'Key-ABC_def',
      keyword: `web (prod) O'Brien ~ 50% + more/é`,
      expires: expiresAt(new Date('2026-12-02T10:00:00Z')),
      signatureversion: '3',
      'details[0].key': 'Value With Spaces',
    };
    const mine = signature(params, secret);
    expect(mine).toBe(independentSignature(params, secret));
    expect(mine).toBe(opensslSignature(commandString(params).toLowerCase(), secret));
    // Any change to a value changes the signature.
    expect(signature({ ...params, keyword: 'web' }, secret)).not.toBe(mine);
  });

  it('formats expires in the one format every CloudStack version parses', () => {
    expect(expiresAt(new Date('2026-12-02T10:11:12.345Z'))).toBe('2026-12-02T10:11:12Z+0000');
  });

  it('refuses parameters it could not sign the way the server checks them', () => {
    expect(() => commandString({ apiKey: 'x' })).toThrow(UnsignableParameterError);
    expect(() => commandString({ signature: 'x' })).toThrow(UnsignableParameterError);
    expect(() => commandString({ name: 'bad \ud800 surrogate' })).toThrow(/not valid Unicode/);
  });
});
