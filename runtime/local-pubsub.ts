import { topicMatches } from '../components/shared/topic-filter';

/**
 * Greengrass local publish/subscribe between components (PublishToTopic / SubscribeToTopic).
 * Subscriptions may use MQTT wildcards, as on nucleus 2.6.0 and later. receiveMode
 * RECEIVE_MESSAGES_FROM_OTHERS keeps a component from hearing its own publishes.
 */
export type LocalMessage = { kind: 'json'; message: unknown } | { kind: 'binary'; message: Buffer };

interface Subscription {
  filter: string;
  subscriber: string;
  receiveOwn: boolean;
  deliver: (topic: string, message: LocalMessage) => void;
}

export class LocalPubSub {
  private readonly subscriptions = new Map<number, Subscription>();
  private nextId = 1;
  readonly counters = { published: 0, delivered: 0 };

  subscribe(filter: string, subscriber: string, receiveOwn: boolean, deliver: Subscription['deliver']): () => void {
    const id = this.nextId++;
    this.subscriptions.set(id, { filter, subscriber, receiveOwn, deliver });
    return () => void this.subscriptions.delete(id);
  }

  publish(publisher: string, topic: string, message: LocalMessage): number {
    this.counters.published += 1;
    let delivered = 0;
    for (const subscription of this.subscriptions.values()) {
      if (!subscription.receiveOwn && subscription.subscriber === publisher) continue;
      if (!topicMatches(subscription.filter, topic)) continue;
      subscription.deliver(topic, message);
      delivered += 1;
    }
    this.counters.delivered += delivered;
    return delivered;
  }
}
