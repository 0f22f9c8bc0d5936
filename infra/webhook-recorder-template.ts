/**
 * The API Gateway (REST API) mapping template that turns one inbound request into one SQS
 * SendMessage call in the format of webhook-message-format.ts. API Gateway runs it with the body
 * already base64 (binaryMediaTypes `*\/*` + contentHandling CONVERT_TO_TEXT), so `$input.body` is
 * the exact bytes, encoded. Every line ends in `##` (a VTL comment that swallows the newline):
 * the output is one form-encoded line, as the SQS query API expects.
 */
import { WEBHOOK_MESSAGE_ATTRIBUTES as A, EMPTY_BODY_PLACEHOLDER, WEBHOOK_MESSAGE_GROUP_ID } from './webhook-message-format.ts';

const attribute = (n: number, name: string, dataType: 'String' | 'Number', value: string) =>
  `&MessageAttribute.${n}.Name=${name}&MessageAttribute.${n}.Value.DataType=${dataType}&MessageAttribute.${n}.Value.StringValue=${value}`;

const lines = [
  `#set($q = '"')`,
  // Headers as a JSON object. escapeJavaScript also escapes ' as \', which JSON does not allow.
  `#set($headers = $input.params().header)`,
  `#set($json = '{')`,
  `#foreach($name in $headers.keySet())`,
  `#set($value = $util.escapeJavaScript($headers.get($name)).replaceAll("\\\\'", "'"))`,
  `#set($json = "$json$q$util.escapeJavaScript($name)$q:$q$value$q")`,
  `#if($foreach.hasNext)#set($json = "$json,")#end`,
  `#end`,
  `#set($json = "$json}")`,
  `#set($query = $input.params().querystring)`,
  `#set($qs = '')`,
  `#foreach($name in $query.keySet())`,
  `#set($qs = "$qs$util.urlEncode($name)=$util.urlEncode($query.get($name))")`,
  `#if($foreach.hasNext)#set($qs = "$qs&")#end`,
  `#end`,
  `Action=SendMessage&MessageGroupId=${WEBHOOK_MESSAGE_GROUP_ID}&MessageDeduplicationId=$util.urlEncode($context.requestId)`,
  `#if($input.body == "")`,
  `&MessageBody=${EMPTY_BODY_PLACEHOLDER}${attribute(1, A.bodyEncoding, 'String', 'empty')}`,
  `#else`,
  `&MessageBody=$util.urlEncode($input.body)${attribute(1, A.bodyEncoding, 'String', 'base64')}`,
  `#end`,
  attribute(2, A.method, 'String', '$util.urlEncode($context.httpMethod)'),
  attribute(3, A.path, 'String', '$util.urlEncode($context.path)'),
  attribute(4, A.headers, 'String', '$util.urlEncode($json)'),
  attribute(5, A.receivedAt, 'Number', '$context.requestTimeEpoch'),
  attribute(6, A.requestId, 'String', '$util.urlEncode($context.requestId)'),
  attribute(7, A.sourceIp, 'String', '$util.urlEncode($context.identity.sourceIp)'),
  // SQS refuses empty attribute values, so an absent query is an absent attribute.
  `#if($qs != '')${attribute(8, A.query, 'String', '$util.urlEncode($qs)')}#end`,
];

export const RECORDER_REQUEST_TEMPLATE = lines.map((line) => `${line}##`).join('\n');
