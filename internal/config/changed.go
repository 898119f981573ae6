package config

import "reflect"

// Changed lists the YAML paths of the settings whose values differ between a
// and b, in schema order. A reload uses it to apply what can change live and
// to name what needs a restart. It walks the schema by reflection so that a
// new setting is compared without touching this function.
func Changed(a, b *Config) []string {
	var paths []string
	var walk func(x, y reflect.Value, prefix string)
	walk = func(x, y reflect.Value, prefix string) {
		t := x.Type()
		for i := range t.NumField() {
			name := yamlName(t.Field(i))
			if name == "" {
				continue
			}
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			fx, fy := x.Field(i), y.Field(i)
			if fx.Kind() == reflect.Struct {
				walk(fx, fy, p)
				continue
			}
			if !reflect.DeepEqual(fx.Interface(), fy.Interface()) {
				paths = append(paths, p)
			}
		}
	}
	walk(reflect.ValueOf(a).Elem(), reflect.ValueOf(b).Elem(), "")
	return paths
}

// Paths lists the YAML path of every setting, in schema order.
func Paths() []string {
	var paths []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := yamlName(f)
			if name == "" {
				continue
			}
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, p)
				continue
			}
			paths = append(paths, p)
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return paths
}
