import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hasWildcard, invalidFilterReason, topicMatches } from '../../components/shared/topic-filter';

// MQTT 3.1.1 section 4.7 (and the same text in MQTT 5 section 4.7); the examples are the spec's own.
describe('topicMatches: exact topics', () => {
  test('a filter without wildcards matches only the identical topic', () => {
    assert.equal(topicMatches('sport/tennis/player1', 'sport/tennis/player1'), true);
    assert.equal(topicMatches('sport/tennis/player1', 'sport/tennis/player2'), false);
    assert.equal(topicMatches('sport/tennis/player1', 'sport/tennis/player1/ranking'), false);
    assert.equal(topicMatches('sport/tennis/player1', 'sport/tennis'), false);
  });

  test('topic levels are case sensitive and a trailing slash is a distinct empty level', () => {
    assert.equal(topicMatches('ACCOUNTS', 'Accounts'), false);
    assert.equal(topicMatches('sport', 'sport/'), false);
    assert.equal(topicMatches('sport/', 'sport'), false);
  });
});

describe('topicMatches: "#" multi-level wildcard (4.7.1.2)', () => {
  test('"sport/tennis/player1/#" matches the parent and every level below it', () => {
    const filter = 'sport/tennis/player1/#';
    assert.equal(topicMatches(filter, 'sport/tennis/player1'), true);
    assert.equal(topicMatches(filter, 'sport/tennis/player1/ranking'), true);
    assert.equal(topicMatches(filter, 'sport/tennis/player1/score/wimbledon'), true);
    assert.equal(topicMatches(filter, 'sport/tennis/player2'), false);
    assert.equal(topicMatches(filter, 'sport/tennis'), false);
  });

  test('"sport/#" matches "sport" itself because "#" includes the parent level', () => {
    assert.equal(topicMatches('sport/#', 'sport'), true);
    assert.equal(topicMatches('sport/#', 'sport/'), true);
    assert.equal(topicMatches('sport/#', 'sports'), false);
  });

  test('"#" alone matches every topic that does not start with "$"', () => {
    for (const topic of ['a', 'a/b/c', '/finance', 'dt/elevator/thing-1/motor']) {
      assert.equal(topicMatches('#', topic), true, topic);
    }
  });

  test('"#" that is not the last level matches nothing more than its literal position allows', () => {
    assert.equal(topicMatches('sport/#/ranking', 'sport/tennis/ranking'), false);
  });
});

describe('topicMatches: "+" single-level wildcard (4.7.1.3)', () => {
  test('"sport/tennis/+" matches exactly one level below sport/tennis', () => {
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player1'), true);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player2'), true);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis/player1/ranking'), false);
    assert.equal(topicMatches('sport/tennis/+', 'sport/tennis'), false);
  });

  test('"sport/+" does not match "sport" but matches "sport/" (an empty level is a level)', () => {
    assert.equal(topicMatches('sport/+', 'sport'), false);
    assert.equal(topicMatches('sport/+', 'sport/'), true);
  });

  test('"+/+" and "/+" match "/finance" while "+" does not', () => {
    assert.equal(topicMatches('+/+', '/finance'), true);
    assert.equal(topicMatches('/+', '/finance'), true);
    assert.equal(topicMatches('+', '/finance'), false);
  });

  test('"+" in the middle matches any single level and "+/tennis/#" combines both wildcards', () => {
    assert.equal(topicMatches('dt/+/thing-1/motor', 'dt/elevator/thing-1/motor'), true);
    assert.equal(topicMatches('dt/+/thing-1/motor', 'dt/elevator/thing-2/motor'), false);
    assert.equal(topicMatches('+/tennis/#', 'sport/tennis'), true);
    assert.equal(topicMatches('+/tennis/#', 'sport/tennis/player1/ranking'), true);
    assert.equal(topicMatches('+/tennis/#', 'sport/golf/player1'), false);
  });
});

describe('topicMatches: topics beginning with "$" (4.7.2)', () => {
  test('a filter starting with "#" or "+" does not match a "$SYS" topic', () => {
    assert.equal(topicMatches('#', '$SYS/broker/clients'), false);
    assert.equal(topicMatches('+/monitor/Clients', '$SYS/monitor/Clients'), false);
    assert.equal(topicMatches('+', '$SYS'), false);
  });

  test('filters that name the "$" level explicitly do match "$" topics', () => {
    assert.equal(topicMatches('$SYS/#', '$SYS/'), true);
    assert.equal(topicMatches('$SYS/#', '$SYS/monitor/Clients'), true);
    assert.equal(topicMatches('$SYS/monitor/+', '$SYS/monitor/Clients'), true);
    assert.equal(topicMatches('$aws/things/+/shadow/#', '$aws/things/thing-1/shadow/name/health/update'), true);
  });

  test('a wildcard below a literal first level still matches a "$" character deeper in the topic', () => {
    assert.equal(topicMatches('a/+', 'a/$b'), true);
    assert.equal(topicMatches('a/#', 'a/$b/c'), true);
  });
});

describe('hasWildcard', () => {
  test('is true when the topic contains "+" or "#" and false otherwise', () => {
    assert.equal(hasWildcard('a/+/c'), true);
    assert.equal(hasWildcard('a/#'), true);
    assert.equal(hasWildcard('a/b/c'), false);
  });
});

describe('invalidFilterReason (4.7.1)', () => {
  test('well-formed filters have no reason', () => {
    for (const filter of ['#', '+', 'sport/tennis/#', 'sport/+/player1', '+/+', '/+', '/', 'a/b/c', '$SYS/#', '+/tennis/#']) {
      assert.equal(invalidFilterReason(filter), undefined, filter);
    }
  });

  test('an empty filter is refused', () => {
    assert.equal(invalidFilterReason(''), 'topic is empty');
  });

  test('"#" that is not a whole last level is refused with the filter named', () => {
    assert.equal(invalidFilterReason('sport/tennis#'), '"#" must be a whole last level in "sport/tennis#"');
    assert.equal(invalidFilterReason('sport/tennis/#/ranking'), '"#" must be a whole last level in "sport/tennis/#/ranking"');
    assert.equal(invalidFilterReason('#/a'), '"#" must be a whole last level in "#/a"');
  });

  test('"+" that is not a whole level is refused with the filter named', () => {
    assert.equal(invalidFilterReason('sport+'), '"+" must be a whole level in "sport+"');
    assert.equal(invalidFilterReason('sport/+tennis/x'), '"+" must be a whole level in "sport/+tennis/x"');
  });
});
