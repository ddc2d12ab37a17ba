import { substitute, variableValues } from '../../src/cloudconfig/substitute';
import type { VariableValues } from '../../src/cloudconfig/substitute';
import { validateUserData } from '../../src/cloudconfig/validate';
import type { IpAddress } from '../../src/cloudconfig/values';

const values = { private_ipv4: '10.0.0.1', public_ipv4: '203.0.113.1', private_ipv6: 'fd00::1', public_ipv6: '2001:db8::1' } as VariableValues;

test.each([
  ['http://$private_ipv4:2379', 'http://10.0.0.1:2379'],
  ['$private_ipv4$public_ipv4', '10.0.0.1203.0.113.1'], // the reference replaces only the first of adjacent ones
  ['$private_ipv4x stays', '$private_ipv4x stays'], // the reference turns this into 10.0.0.1x
  ['$private_ipv4_extra', '$private_ipv4_extra'],
  ['\\$private_ipv4 is literal', '$private_ipv4 is literal'],
  ['\\\\$private_ipv4', '\\$private_ipv4'],
  ['${private_ipv4} and $local_ipv4 are not variables', '${private_ipv4} and $local_ipv4 are not variables'],
  ['[$public_ipv6]:2379 $private_ipv6.', '[2001:db8::1]:2379 fd00::1.'],
])('%s', (text, want) => {
  expect(substitute(text, values)).toBe(want);
});

test('a variable without a value becomes empty', () => {
  expect(substitute('a=$public_ipv4;', {})).toBe('a=;');
});

test('values come from metadata, else the COREOS_* environment', () => {
  expect(variableValues({ privateIpv4: '10.0.0.9' as IpAddress }, { COREOS_PRIVATE_IPV4: '1.1.1.1', COREOS_PUBLIC_IPV4: '2.2.2.2' })).toEqual({
    private_ipv4: '10.0.0.9',
    public_ipv4: '2.2.2.2',
    private_ipv6: undefined,
    public_ipv6: undefined,
  });
});

test('given metadata, the validator warns about variables that would be empty', () => {
  const report = validateUserData(Buffer.from('#cloud-config\nhostname: $private_ipv4\ncoreos:\n  etcd2:\n    name: $public_ipv4\n'), {
    variables: { private_ipv4: '10.0.0.1' },
  });
  expect(report.diagnostics.filter((d) => d.code === 'empty-variable').map((d) => `${d.line}:${d.column} ${d.message}`)).toEqual([
    '5:11 $public_ipv4 has no value in the metadata (nor in COREOS_PUBLIC_IPV4): it becomes empty',
  ]);
});

test('environment values are addresses of the right family, or an error naming the variable', () => {
  expect(() => variableValues({}, { COREOS_PRIVATE_IPV4: '1.2.3.4"\nwrite_files: []' })).toThrow(/^COREOS_PRIVATE_IPV4="1\.2\.3\.4\\"\\nwrite_files: \[\]" is not an IPv4 address$/);
  expect(() => variableValues({}, { COREOS_PUBLIC_IPV6: '10.0.0.1' })).toThrow(/COREOS_PUBLIC_IPV6.*not an IPv6 address/);
  expect(() => variableValues({}, { COREOS_PRIVATE_IPV6: 'fe80::1%eth0' })).toThrow(/not an IPv6 address/);
  expect(variableValues({}, { COREOS_PRIVATE_IPV6: '::ffff:10.0.0.1', COREOS_PUBLIC_IPV4: '' })).toEqual({ private_ipv6: '::ffff:10.0.0.1' });
});
