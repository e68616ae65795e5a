export { SchemaForm, type FormChange, type SchemaFormProps } from "./SchemaForm";
export { classify, defaultFor, formatScalar, parseScalar, type Classified, type FieldSpec } from "./classify";
